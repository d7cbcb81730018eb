import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { getJson, onUnauthorized, token, Unauthorized } from './api.js';
import { DeadLettersPage } from './dead-letters.js';
import { html } from './html.js';
import { JobPage } from './job.js';
import { JobsPage } from './jobs.js';
import { OverviewPage } from './overview.js';
import { PipelinesPage } from './pipelines.js';
import { href, useRoute } from './route.js';
import { TokenForm } from './token-form.js';

const VIEWS = [
  { path: '', label: 'Overview' },
  { path: 'jobs', label: 'Jobs' },
  { path: 'dead-letters', label: 'Dead letters' },
  { path: 'pipelines', label: 'Pipelines' },
];

function View({ route }) {
  const [first, second] = route.path;
  if (first === 'jobs' && second) return html`<${JobPage} id=${second} />`;
  // Keyed by its query: a link to other filters starts the list over (typing in the filters replaces the query without one).
  if (first === 'jobs') return html`<${JobsPage} key=${route.params.toString()} params=${route.params} />`;
  if (first === 'dead-letters') return html`<${DeadLettersPage} />`;
  if (first === 'pipelines') return html`<${PipelinesPage} />`;
  return html`<${OverviewPage} />`;
}

function Shell({ onForget }) {
  const route = useRoute();
  const main = useRef(null);
  const current = route.path[0] ?? '';
  // A new view gets the focus, so keyboard and screen reader users start at its top.
  useEffect(() => { main.current?.focus({ preventScroll: true }); }, [route.path.join('/')]);
  return html`
    <a class="skip" href="#main" onClick=${(e) => { e.preventDefault(); main.current?.focus(); }}>Skip to content</a>
    <header class="top">
      <a class="brand" href="#/">mediaflow</a>
      <nav aria-label="Views">
        <ul>
          ${VIEWS.map((v) => html`<li><a href=${href(v.path ? [v.path] : [])} aria-current=${current === v.path ? 'page' : undefined}>${v.label}</a></li>`)}
        </ul>
      </nav>
      ${token.get() && html`<button type="button" class="quiet" onClick=${onForget}>Forget token</button>`}
    </header>
    <main id="main" tabindex="-1" ref=${main}><${View} route=${route} /></main>`;
}

/**
 * Asks the API once with what the tab holds (a server without a token
 * answers without one); on 401, at any time, the page asks for the token.
 */
function App() {
  const [access, setAccess] = useState({ state: 'checking', refused: null });
  const check = async (refusedText) => {
    try {
      await getJson('/v1/overview');
      setAccess({ state: 'open', refused: null });
    } catch (err) {
      if (!(err instanceof Unauthorized)) return setAccess({ state: 'open', refused: null }); // the views show the error
      token.clear();
      setAccess({ state: 'token', refused: refusedText });
    }
  };
  useEffect(() => { check(null); }, []);
  useEffect(() => onUnauthorized(() => {
    token.clear();
    setAccess({ state: 'token', refused: 'The server refused the token (or it changed). Enter it again.' });
  }), []);
  if (access.state === 'checking') return html`<p class="notice" role="status">Connecting…</p>`;
  if (access.state === 'token') {
    return html`<${TokenForm} refused=${access.refused} onToken=${(t) => { token.set(t); check('That token was refused.'); }} />`;
  }
  return html`<${Shell} onForget=${() => { token.clear(); setAccess({ state: 'token', refused: null }); }} />`;
}

render(html`<${App} />`, document.getElementById('app'));
