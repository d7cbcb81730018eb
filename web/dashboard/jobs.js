import { useEffect, useState } from 'preact/hooks';
import { html } from './html.js';
import { JobList } from './job-list.js';
import { useLiveJobs } from './live-jobs.js';
import { href, replaceParams } from './route.js';

export const STATES = ['queued', 'running', 'done', 'failed', 'dead', 'superseded', 'removed', 'skipped'];

/** Every job, newest first, live; filtered by state and by part of the key (kept in the URL, so a filtered list can be linked to). */
export function JobsPage({ params }) {
  const [states, setStates] = useState(() => (params.get('state') ?? '').split(',').filter((s) => STATES.includes(s)));
  const [q, setQ] = useState(() => params.get('q') ?? '');
  const [pipeline] = useState(() => params.get('pipeline') ?? '');
  // The list asks again once typing pauses, not at every key.
  const [search, setSearch] = useState(q.trim());
  useEffect(() => {
    const t = setTimeout(() => setSearch(q.trim()), 250);
    return () => clearTimeout(t);
  }, [q]);
  const filter = { states, q: search, pipeline };
  const [limit, setLimit] = useState(50);
  const { jobs, error } = useLiveJobs(filter, { limit });
  const update = (next) => replaceParams(['jobs'], { state: next.states.join(','), q: next.q, pipeline: next.pipeline });
  const toggle = (s) => {
    const next = states.includes(s) ? states.filter((x) => x !== s) : [...states, s];
    setStates(next);
    update({ ...filter, states: next });
  };
  return html`
    <h1>Jobs${pipeline && html` of ${pipeline}`}</h1>
    ${pipeline && html`<p><a href=${href(['jobs'])}>Every pipeline's jobs</a></p>`}
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <fieldset>
        <legend>State</legend>
        ${STATES.map((s) => html`
          <label class="check"><input type="checkbox" name="state" value=${s} checked=${states.includes(s)} onChange=${() => toggle(s)} /> ${s}</label>`)}
      </fieldset>
      <label for="search">Search by key</label>
      <input id="search" type="search" value=${q} placeholder="part of a file or object name"
        onInput=${(e) => { setQ(e.currentTarget.value); update({ states, pipeline, q: e.currentTarget.value.trim() }); }} />
    </form>
    <${JobList} jobs=${jobs} error=${error} label="Jobs" empty=${states.length || q ? 'No job matches.' : 'No jobs yet: drop a file into a watched folder or bucket.'} />
    ${jobs?.length === limit && limit < 500 && html`<button type="button" class="quiet more" onClick=${() => setLimit(limit + 50)}>Show 50 more</button>`}`;
}
