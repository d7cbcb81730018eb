import { useState } from 'preact/hooks';
import { html } from './html.js';

/** Asks for MEDIAFLOW_TOKEN once; the page keeps it for this tab only. */
export function TokenForm({ refused, onToken }) {
  const [value, setValue] = useState('');
  const submit = (e) => {
    e.preventDefault();
    if (value.trim()) onToken(value.trim());
  };
  return html`
    <main id="main" class="token">
      <h1>mediaflow</h1>
      <form onSubmit=${submit} aria-describedby="token-help">
        <label for="token">Access token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus
          value=${value} onInput=${(e) => setValue(e.currentTarget.value)}
          aria-invalid=${refused ? 'true' : 'false'} aria-describedby=${refused ? 'token-refused' : undefined} />
        <button type="submit">Open the dashboard</button>
        <p id="token-help" class="hint">The value of <code>MEDIAFLOW_TOKEN</code> on the server. It is kept in this tab only, until it closes.</p>
        ${refused && html`<p id="token-refused" class="error" role="alert">${refused}</p>`}
      </form>
    </main>`;
}
