import { useState } from 'preact/hooks';
import { html } from './html.js';

/** Asks for MEDIAFLOW_TOKEN once; the page keeps it for this tab only. */
export function TokenForm({ refused, onToken }) {
  const [value, setValue] = useState('');
  const [invalid, setInvalid] = useState(null);
  const submit = (e) => {
    e.preventDefault();
    const t = value.trim();
    // A header carries printable ASCII only: anything else could never match, so say so here.
    if (!/^[\x20-\x7e]+$/.test(t)) return setInvalid('A token is printable ASCII (letters, digits, punctuation, spaces): this one has other characters.');
    setInvalid(null);
    onToken(t);
  };
  const problem = invalid ?? refused;
  return html`
    <main id="main" class="token">
      <h1>mediaflow</h1>
      <form onSubmit=${submit} aria-describedby="token-help">
        <label for="token">Access token</label>
        <input id="token" name="token" type="password" autocomplete="current-password" required autofocus
          value=${value} onInput=${(e) => setValue(e.currentTarget.value)}
          aria-invalid=${problem ? 'true' : 'false'} aria-describedby=${problem ? 'token-refused' : undefined} />
        <button type="submit">Open the dashboard</button>
        <p id="token-help" class="hint">The value of <code>MEDIAFLOW_TOKEN</code> on the server. It is kept in this tab only, until it closes.</p>
        ${problem && html`<p id="token-refused" class="error" role="alert">${problem}</p>`}
      </form>
    </main>`;
}
