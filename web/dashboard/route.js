import { useEffect, useState } from 'preact/hooks';

/**
 * The page's place is in the URL's hash (#/jobs?state=dead, #/jobs/42), so
 * every view can be linked to and the back button works, with nothing for
 * the server to route.
 */
export function parseHash(hash = location.hash) {
  const raw = hash.replace(/^#\/?/, '');
  const q = raw.indexOf('?');
  const path = (q < 0 ? raw : raw.slice(0, q)).split('/').filter(Boolean).map(decodeURIComponent);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  return { path, params };
}

export function useRoute() {
  const [route, setRoute] = useState(() => parseHash());
  useEffect(() => {
    const changed = () => setRoute(parseHash());
    addEventListener('hashchange', changed);
    return () => removeEventListener('hashchange', changed);
  }, []);
  return route;
}

/** The hash of a view with its parameters, for links. */
export function href(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const s = q.toString();
  return `#/${path.map(encodeURIComponent).join('/')}${s ? `?${s}` : ''}`;
}

/** Replaces the current view's parameters without a new history entry (filters as you type). */
export function replaceParams(path, params) {
  history.replaceState(null, '', href(path, params));
}
