import { useState } from 'preact/hooks';
import { ApiError, getJson, post } from './api.js';
import { plural } from './format.js';
import { html } from './html.js';
import { JobList } from './job-list.js';
import { useLiveJobs } from './live-jobs.js';
import { usePoll } from './poll.js';

/** A button that posts once and says how it went. */
function RetryButton({ path, label, ariaLabel, describedBy, done }) {
  const [state, setState] = useState(null);
  const click = async () => {
    setState({ busy: true });
    try {
      const r = await post(path);
      setState({ text: done(r.retried) });
    } catch (err) {
      setState({ error: err instanceof ApiError ? err.message : String(err) });
    }
  };
  return html`
    <button type="button" onClick=${click} disabled=${state?.busy || Boolean(state?.text)} aria-label=${ariaLabel} aria-describedby=${describedBy}>${label}</button>
    ${state?.text && html`<span class="done" role="status">${state.text}</span>`}
    ${state?.error && html`<span class="error" role="alert">${state.error}</span>`}`;
}

/**
 * Dead letters with their reason, newest first. A retried row stays and
 * follows its job (queued, running, then done or dead again).
 */
export function DeadLettersPage() {
  const { jobs, error } = useLiveJobs({ states: ['dead'] }, { keep: true });
  const { data: overview } = usePoll((signal) => getJson('/v1/overview', { signal }), 3000);
  const withDead = (overview?.pipelines ?? []).filter((p) => p.loaded && p.counts.dead > 0);
  return html`
    <h1>Dead letters</h1>
    <p class="hint">Jobs that will not be tried again on their own: a corrupt or unsupported input, or every attempt used. Fix the cause, then retry.</p>
    ${withDead.length > 0 && html`
      <ul class="retry-all" aria-label="Retry by pipeline">
        ${withDead.map((p) => html`<li key=${p.name}>
          <${RetryButton} path=${`/v1/pipelines/${encodeURIComponent(p.name)}/retry`}
            label=${p.counts.dead === 1 ? `Retry the dead letter of ${p.name}` : `Retry all ${p.counts.dead} dead letters of ${p.name}`} done=${(n) => `${plural(n, 'job')} queued again`} /></li>`)}
      </ul>`}
    <${JobList} jobs=${jobs} error=${error} label="Dead letters" empty="No dead letters."
      action=${(job) => (job.state === 'dead'
        ? html`<${RetryButton} key=${`retry-${job.id}-${job.updatedAt}`} path=${`/v1/jobs/${job.id}/retry`} label="Retry" ariaLabel=${`Retry ${job.input.key}`}
            describedBy=${`reason-${job.id}`} done=${() => 'queued again'} />`
        : html`<span class="moving" role="status">retried: ${job.state}</span>`)} />`;
}
