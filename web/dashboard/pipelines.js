import { getJson } from './api.js';
import { html } from './html.js';
import { usePoll } from './poll.js';

const STATUS = {
  loaded: 'running as loaded',
  changed: 'running as loaded; the file has changed since (valid: a restart applies it)',
  invalid: 'the file has problems now: a restart would refuse to start',
  new: 'a valid file that was not there at start (a restart loads it)',
  missing: 'running as loaded; the file is gone',
};

function Files({ files }) {
  if (!files) return html`<p class="hint">This service was given its pipelines by the program that embeds it, not by files.</p>`;
  return html`
    <ul class="files">${files.map((f) => html`
      <li class=${`file file-${f.status}`} data-status=${f.status}>
        <p><code class="key">${f.file}</code>${f.pipeline && html` (pipeline <strong>${f.pipeline}</strong>)`}: ${STATUS[f.status]}</p>
        ${f.problems.length > 0 && html`<ul class="problems" aria-label=${`Problems in ${f.file}`}>
          ${f.problems.map((p) => html`<li><code class="key">${p.path}</code>: ${p.message}${p.expected !== undefined ? `; expected ${p.expected}` : ''}${p.found !== undefined ? `, found ${p.found}` : ''}</li>`)}
        </ul>`}
      </li>`)}
    </ul>`;
}

/** Each loaded pipeline's definition, and the files it came from checked again now (a file edited since shows its problems). */
export function PipelinesPage() {
  const { data, error } = usePoll((signal) => getJson('/v1/pipelines', { signal }), 5000);
  if (!data) return error ? html`<h1>Pipelines</h1><p class="error" role="alert">${error.message}</p>` : html`<p role="status">Loading…</p>`;
  return html`
    <h1>Pipelines</h1>
    ${error && html`<p class="error" role="alert">Not up to date: ${error.message}</p>`}
    <section aria-labelledby="files-h"><h2 id="files-h">Files</h2><${Files} files=${data.files} /></section>
    <section aria-labelledby="loaded-h"><h2 id="loaded-h">Loaded</h2>
      ${data.pipelines.map((p, i) => html`
        <article class="pipeline" key=${p.name} aria-labelledby=${`pipeline-${i}`}>
          <h3 id=${`pipeline-${i}`}>${p.name}</h3>
          <p class="summary"><code class="key">${p.file}</code>, fingerprint <code>${p.fingerprint.slice(0, 12)}</code></p>
          <details open>
            <summary>As it runs (defaults filled in, paths resolved)</summary>
            <pre class="json" tabindex="0">${JSON.stringify(p.definition, null, 2)}</pre>
          </details>
        </article>`)}
    </section>`;
}
