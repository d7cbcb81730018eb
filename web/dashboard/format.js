// How numbers and times read on the page.

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

/** "12 s ago" for a time (ISO text or ms) in the recent past, the date otherwise. */
export function ago(time, now = Date.now()) {
  if (!time) return '–';
  const t = typeof time === 'number' ? time : Date.parse(time);
  const d = now - t;
  if (d < 0) return 'just now';
  if (d < 60_000) return `${Math.round(d / 1000)} s ago`;
  if (d < 3_600_000) return `${Math.round(d / 60_000)} min ago`;
  return new Date(t).toLocaleString();
}

export const dateTime = (time) => (time ? new Date(time).toLocaleString() : '–');

export const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
