import { useEffect, useState } from 'preact/hooks';
import { blobUrl, request } from './api.js';
import { html } from './html.js';

const IMAGES = new Set(['image/jpeg', 'image/png', 'image/webp', 'image/avif', 'image/gif']);

/** An output's bytes, fetched once per page: a job's outputs do not change once it is done. */
const cache = new Map();
const CACHED = 300;

function outputUrl(jobId, index) {
  const key = `${jobId}/${index}`;
  let url = cache.get(key);
  if (!url) {
    url = blobUrl(`/v1/jobs/${jobId}/outputs/${index}`);
    url.catch(() => cache.delete(key));
    cache.set(key, url);
    if (cache.size > CACHED) {
      const [oldest, value] = cache.entries().next().value;
      cache.delete(oldest);
      value.then((u) => URL.revokeObjectURL(u), () => {});
    }
  }
  return url;
}

export const isImage = (output) => IMAGES.has(output.contentType);

/** The smallest image a job wrote, for a list row (its index among the job's outputs), or -1. */
export function thumbnailIndex(job) {
  let best = -1;
  job.outputs.forEach((o, i) => {
    if (isImage(o) && (best < 0 || (o.width ?? 1e9) * (o.height ?? 1e9) < (job.outputs[best].width ?? 1e9) * (job.outputs[best].height ?? 1e9))) best = i;
  });
  return best;
}

/** One output of one job as an image; `alt` says what it is (as text, like every name on the page). */
export function OutputImage({ jobId, index, alt, className }) {
  const [src, setSrc] = useState(null);
  const [failed, setFailed] = useState(null);
  useEffect(() => {
    let shown = true;
    setSrc(null);
    setFailed(null);
    outputUrl(jobId, index).then((u) => { if (shown) setSrc(u); }, (err) => { if (shown) setFailed(err.message); });
    return () => { shown = false; };
  }, [jobId, index]);
  if (failed) return html`<span class=${`image-missing ${className ?? ''}`} role="img" aria-label=${`${alt}: ${failed}`}>${failed}</span>`;
  if (!src) return html`<span class=${`image-loading ${className ?? ''}`} role="img" aria-label=${`${alt} (loading)`}></span>`;
  return html`<img class=${className} src=${src} alt=${alt} />`;
}

/** An output's text (the metadata step's JSON), fetched with the token. */
export function useOutputText(jobId, index, enabled) {
  const [text, setText] = useState(null);
  useEffect(() => {
    if (!enabled) return undefined;
    let shown = true;
    request(`/v1/jobs/${jobId}/outputs/${index}`).then((r) => r.text()).then((t) => { if (shown) setText(t); }, (err) => { if (shown) setText(`(${err.message})`); });
    return () => { shown = false; };
  }, [jobId, index, enabled]);
  return text;
}
