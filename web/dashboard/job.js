import { useState } from 'preact/hooks';
import { ApiError, getJson, post } from './api.js';
import { bytes, dateTime, duration, plural } from './format.js';
import { html } from './html.js';
import { StateBadge } from './job-list.js';
import { usePoll } from './poll.js';
import { href } from './route.js';
import { isImage, OutputImage, useOutputText } from './thumbnail.js';

const FINISHED = ['done', 'dead', 'superseded', 'removed', 'skipped'];

function Decision({ job }) {
  if (job.state !== 'done') return null;
  if (!job.deduplicated) return html`<p class="decision">Rendered: the steps ran on this input.</p>`;
  if (job.copiedFrom) {
    return html`<p class="decision">Copied from <a href=${href(['jobs', String(job.copiedFrom)])}>job #${job.copiedFrom}</a>: the same content went through the same steps there, so no image work was done.</p>`;
  }
  return html`<p class="decision">Copied from an earlier render of the same content (recorded before the attempt log).</p>`;
}

function Steps({ steps }) {
  if (!steps.length) return null;
  const total = steps.reduce((n, s) => n + s.ms, 0) || 1;
  return html`
    <table class="steps">
      <caption>Time per step</caption>
      <thead><tr><th scope="col">Step</th><th scope="col">Time</th><th scope="col"><span class="sr-only">Share</span></th></tr></thead>
      <tbody>${steps.map((s) => html`
        <tr><th scope="row">${s.step}</th><td>${duration(s.ms)}</td>
          <td class="share"><svg viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true"><rect class="bar-done" width=${Math.max(1, (s.ms / total) * 100)} height="8" /></svg></td></tr>`)}
      </tbody>
    </table>`;
}

/** The attempts as recorded, with a gap where an attempt never recorded its end (its worker stopped). */
function Attempts({ job }) {
  const log = job.attemptLog;
  if (!log.length) return html`<p class="empty">${job.attempts ? 'No attempt has recorded its end yet.' : 'Not started yet.'}</p>`;
  return html`
    <ol class="attempts">${log.map((a, i) => {
      const retried = i > 0 && a.attempt <= log[i - 1].attempt;
      const prev = i === 0 || retried ? 0 : log[i - 1].attempt;
      const missing = a.attempt > prev + 1;
      return html`
        ${retried && html`<li class="retried">Put back in the queue (a dead letter retried).</li>`}
        ${missing && html`<li class="missing">Attempt ${prev + 1}${a.attempt - 1 > prev + 1 ? `–${a.attempt - 1}` : ''}: no record (its worker stopped before it ended).</li>`}
        <li class=${`attempt outcome-${a.outcome}`}>
          <p><strong>Attempt ${a.attempt}</strong>: <${StateBadge} state=${a.outcome} /> after ${duration(Date.parse(a.endedAt) - Date.parse(a.startedAt))},
            ${' '}${dateTime(a.startedAt)}, on ${a.worker}${a.copiedFrom ? html`, copied from <a href=${href(['jobs', String(a.copiedFrom)])}>job #${a.copiedFrom}</a>` : ''}</p>
          ${a.error && html`<p class="reason">${a.step ? html`Step <code>${a.step}</code>: ` : ''}${a.error}</p>`}
          <${Steps} steps=${a.steps} />
        </li>`;
    })}</ol>`;
}

function Output({ job, output, index }) {
  const json = output.contentType === 'application/json';
  const text = useOutputText(job.id, index, json);
  const label = `${output.stepId}: ${output.key}`;
  return html`
    <figure class="output">
      ${isImage(output) && html`<${OutputImage} jobId=${job.id} index=${index} alt=${label} className="output-image" />`}
      ${json && html`<pre class="output-text" tabindex="0" aria-label=${label}>${text ?? 'Loading…'}</pre>`}
      <figcaption><strong>${output.stepId}</strong> <span class="key">${output.key}</span>
        <span class="meta">${output.contentType}, ${bytes(output.size)}${output.width ? `, ${output.width}×${output.height}` : ''}</span></figcaption>
    </figure>`;
}

function Retry({ job }) {
  const [state, setState] = useState(null);
  if (job.state !== 'dead') return state === 'queued' ? html`<p role="status">Queued again.</p>` : null;
  const retry = async () => {
    setState('sending');
    try {
      await post(`/v1/jobs/${job.id}/retry`);
      setState('queued');
    } catch (err) {
      setState(err instanceof ApiError ? err.message : String(err));
    }
  };
  return html`
    <button type="button" onClick=${retry} disabled=${state === 'sending'}>Retry this dead letter</button>
    ${state && state !== 'sending' && state !== 'queued' && html`<p class="error" role="alert">${state}</p>`}`;
}

/** One job: its input, pipeline, attempts with their errors, time per step, the dedup decision and its outputs. */
export function JobPage({ id }) {
  const { data: job, error } = usePoll((signal) => getJson(`/v1/jobs/${encodeURIComponent(id)}`, { signal }), 1500, [id]);
  if (!job) return error ? html`<h1>Job #${id}</h1><p class="error" role="alert">${error.message}</p>` : html`<p role="status">Loading…</p>`;
  const i = job.input;
  return html`
    <h1 class="job-title"><span class="sr-only">Job #${job.id}: </span>${i.key}</h1>
    <p class="summary"><${StateBadge} state=${job.state} /> job #${job.id} of pipeline${' '}
      <a href=${href(['jobs'], { pipeline: job.pipeline })}>${job.pipeline}</a>, ${plural(job.attempts, 'attempt')}
      ${!FINISHED.includes(job.state) && html`<span role="status"> (updating live)</span>`}</p>
    ${job.error && html`<p class="reason" role=${job.state === 'dead' ? 'alert' : undefined}>${job.error}</p>`}
    <${Retry} job=${job} />
    <${Decision} job=${job} />
    <section aria-labelledby="input-h">
      <h2 id="input-h">Input</h2>
      <dl class="facts">
        <dt>Key</dt><dd class="key">${i.key}</dd>
        <dt>Store</dt><dd class="key">${i.store}</dd>
        <dt>Version</dt><dd class="key">${i.version}</dd>
        <dt>Size</dt><dd>${bytes(i.size)}${i.contentType ? `, ${i.contentType}` : ''}</dd>
        <dt>Changed</dt><dd>${dateTime(i.changedAt)}</dd>
        <dt>SHA-256</dt><dd class="key">${i.sha256 ?? '–'}</dd>
        <dt>Recorded</dt><dd>${dateTime(job.createdAt)}</dd>
      </dl>
    </section>
    <section aria-labelledby="attempts-h">
      <h2 id="attempts-h">Attempts</h2>
      <${Attempts} job=${job} />
    </section>
    <section aria-labelledby="outputs-h">
      <h2 id="outputs-h">Outputs</h2>
      ${job.outputs.length ? html`<div class="outputs">${job.outputs.map((o, n) => html`<${Output} key=${n} job=${job} output=${o} index=${n} />`)}</div>`
        : html`<p class="empty">${job.state === 'done' ? 'This pipeline writes no outputs.' : 'None yet.'}</p>`}
    </section>`;
}
