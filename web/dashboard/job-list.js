import { html } from './html.js';
import { ago, plural } from './format.js';
import { href } from './route.js';
import { OutputImage, thumbnailIndex } from './thumbnail.js';

export function StateBadge({ state }) {
  return html`<span class=${`state state-${state}`}>${state}</span>`;
}

/** The last part of a key, where a long path would not fit a narrow screen; the whole key is in the link's title. */
const shortKey = (key) => (key.length > 60 ? `…${key.slice(-58)}` : key);

function JobRow({ job, action }) {
  const thumb = thumbnailIndex(job);
  return html`
    <li class="job" data-job=${job.id} data-state=${job.state}>
      <div class="thumb">
        ${thumb >= 0
          ? html`<${OutputImage} jobId=${job.id} index=${thumb} alt=${`${job.outputs[thumb].stepId} of ${job.input.key}`} />`
          : html`<span class="no-thumb" aria-hidden="true"></span>`}
      </div>
      <div class="what">
        <a class="key" href=${href(['jobs', String(job.id)])} title=${job.input.key}>${shortKey(job.input.key)}</a>
        <span class="meta">
          <${StateBadge} state=${job.state} />
          <span>${job.pipeline}</span>
          <span>#${job.id}</span>
          <span>${plural(job.attempts, 'attempt')}</span>
          <span>${ago(job.updatedAt)}</span>
        </span>
        ${job.error && (job.state === 'failed' || job.state === 'dead' || job.state === 'skipped') && html`<span class="reason" id=${`reason-${job.id}`}>${job.error}</span>`}
      </div>
      ${action && html`<div class="action">${action(job)}</div>`}
    </li>`;
}

/** A list of jobs as rows; `action(job)` adds a control to each row (the dead letters' Retry). */
export function JobList({ jobs, error, empty, action, label }) {
  if (!jobs) return error ? html`<p class="error" role="alert">${error.message}</p>` : html`<p role="status">Loading…</p>`;
  return html`
    ${error && html`<p class="error" role="alert">Not up to date: ${error.message}</p>`}
    ${jobs.length === 0
      ? html`<p class="empty">${empty}</p>`
      : html`<ul class="jobs" aria-label=${label}>${jobs.map((j) => html`<${JobRow} key=${j.id} job=${j} action=${action} />`)}</ul>`}`;
}
