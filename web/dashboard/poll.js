import { useEffect, useRef, useState } from 'preact/hooks';
import { Unauthorized } from './api.js';

/**
 * Calls `load` now and again every `ms` while the component is shown (and
 * the tab visible), keeping the last answer and the last error. A change of
 * `deps` starts over.
 */
export function usePoll(load, ms, deps = []) {
  const [state, setState] = useState({ data: null, error: null });
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let stopped = false;
    let timer = null;
    const controller = new AbortController();
    const tick = async () => {
      if (!document.hidden) {
        try {
          const data = await loadRef.current(controller.signal);
          if (!stopped) setState({ data, error: null });
        } catch (error) {
          if (stopped || error.name === 'AbortError') return;
          if (error instanceof Unauthorized) return; // the page asks for the token
          setState((s) => ({ data: s.data, error }));
        }
      }
      if (!stopped) timer = setTimeout(tick, ms);
    };
    setState({ data: null, error: null });
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
      controller.abort();
    };
  }, deps);
  return state;
}
