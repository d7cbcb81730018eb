import { getJson } from './api.js';
import { ActivityChart } from './chart.js';
import { html } from './html.js';
import { usePoll } from './poll.js';
import { href } from './route.js';

const COLUMNS = ['queued', 'running', 'done', 'failed', 'dead', 'skipped'];

function Queue({ queue }) {
  if (!queue) return html`<p class="error">The queue cannot be reached now.</p>`;
  const held = queue.waiting + queue.running;
  return html`
    <div class="queue">
      <label for="queue-meter">Queue: ${held} of ${queue.highWaterMark}</label>
      <meter id="queue-meter" min="0" max=${queue.highWaterMark} high=${queue.highWaterMark * 0.8} value=${held}>${held} of ${queue.highWaterMark}</meter>
      <p class="hint">${queue.waiting} waiting, ${queue.running} running, ${queue.delayed} retries waiting for their time.
        Sources wait while ${queue.highWaterMark} jobs wait or run (the high-water mark).</p>
    </div>`;
}

function Counts({ pipelines }) {
  if (!pipelines.length) return html`<p class="empty">No pipelines are loaded.</p>`;
  return html`
    <div class="scroll" tabindex="0" role="region" aria-labelledby="counts-caption">
      <table class="counts">
        <caption id="counts-caption">Jobs by pipeline and state</caption>
        <thead><tr><th scope="col">Pipeline</th>${COLUMNS.map((c) => html`<th scope="col">${c}</th>`)}</tr></thead>
        <tbody>${pipelines.map((p) => html`
          <tr data-pipeline=${p.name}>
            <th scope="row"><a href=${href(['jobs'], { pipeline: p.name })}>${p.name}</a>${!p.loaded && html` <span class="hint">(not loaded)</span>`}</th>
            ${COLUMNS.map((c) => html`<td data-state=${c}>${p.counts[c] > 0
              ? html`<a href=${href(['jobs'], { pipeline: p.name, state: c })} aria-label=${`${p.counts[c]} ${c} in ${p.name}`}>${p.counts[c]}</a>` : '0'}</td>`)}
          </tr>`)}
        </tbody>
      </table>
    </div>`;
}

/** Per pipeline, jobs by state; what ended over the last minutes with the event lag; the queue against its high-water mark. */
export function OverviewPage() {
  const { data, error } = usePoll((signal) => getJson('/v1/overview', { signal }), 2000);
  if (!data) return error ? html`<h1>Overview</h1><p class="error" role="alert">${error.message}</p>` : html`<p role="status">Loading…</p>`;
  return html`
    <h1>Overview</h1>
    ${error && html`<p class="error" role="alert">Not up to date: ${error.message}</p>`}
    <p class="hint">This process runs as <strong>${data.role}</strong>; the figures are the shared ledger's and queue's.</p>
    <section aria-labelledby="activity-h"><h2 id="activity-h">Last ${Math.round(data.activity.spanMs / 60000)} minutes</h2>
      <${ActivityChart} activity=${data.activity} now=${data.now} /></section>
    <section aria-labelledby="queue-h"><h2 id="queue-h">Queue</h2><${Queue} queue=${data.queue} /></section>
    <section aria-labelledby="pipelines-h"><h2 id="pipelines-h">Pipelines</h2><${Counts} pipelines=${data.pipelines} /></section>`;
}
