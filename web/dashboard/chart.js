import { html } from './html.js';
import { duration } from './format.js';

const W = 300;
const H = 90;

/**
 * Jobs ended per interval (done, and dead on top) as bars and the mean
 * event lag as a line on its own scale: an SVG drawn from the numbers, with
 * the same numbers as a table for screen readers and for reading exact
 * values.
 */
export function ActivityChart({ activity, now }) {
  const { since, intervalMs } = activity;
  const slots = [];
  for (let at = since; at <= now; at += intervalMs) slots.push({ at, done: 0, dead: 0, lagSum: 0, lagN: 0, lagMax: null });
  for (const a of activity.intervals) {
    const slot = slots[Math.round((a.at - since) / intervalMs)];
    if (!slot) continue;
    slot.done += a.done;
    slot.dead += a.dead;
    if (a.lagMeanMs !== null) {
      const n = a.done + a.dead;
      slot.lagSum += a.lagMeanMs * n;
      slot.lagN += n;
      slot.lagMax = Math.max(slot.lagMax ?? 0, a.lagMaxMs);
    }
  }
  const top = Math.max(1, ...slots.map((s) => s.done + s.dead));
  const lags = slots.map((s) => (s.lagN ? s.lagSum / s.lagN : null));
  const lagTop = Math.max(1, ...lags.filter((l) => l !== null));
  const bw = W / slots.length;
  const y = (n) => H - (n / top) * (H - 4);
  const points = lags.map((l, i) => (l === null ? null : `${(i + 0.5) * bw},${H - (l / lagTop) * (H - 4)}`)).filter(Boolean);
  const total = slots.reduce((n, s) => n + s.done + s.dead, 0);
  const minutes = Math.round(activity.spanMs / 60_000);
  return html`
    <figure class="chart">
      <svg viewBox=${`0 0 ${W} ${H}`} role="img" aria-labelledby="chart-title">
        <title id="chart-title">${total} jobs ended in the last ${minutes} minutes; busiest minute ${top}; largest mean lag ${duration(lagTop)}</title>
        ${slots.map((s, i) => html`
          <rect class="bar-done" x=${i * bw + 1} y=${y(s.done)} width=${bw - 2} height=${H - y(s.done)} />
          <rect class="bar-dead" x=${i * bw + 1} y=${y(s.done + s.dead)} width=${bw - 2} height=${y(s.done) - y(s.done + s.dead)} />`)}
        ${points.length > 1 && html`<polyline class="lag" points=${points.join(' ')} />`}
        ${points.length === 1 && html`<circle class="lag-dot" cx=${points[0].split(',')[0]} cy=${points[0].split(',')[1]} r="2" />`}
      </svg>
      <figcaption>
        <span class="legend"><span class="swatch done" aria-hidden="true"></span> done</span>
        <span class="legend"><span class="swatch dead" aria-hidden="true"></span> dead</span>
        <span class="legend"><span class="swatch lag" aria-hidden="true"></span> event lag (mean, up to ${duration(lagTop)})</span>
        <span>a bar a minute, up to ${top}</span>
      </figcaption>
      <details>
        <summary>The numbers</summary>
        <table class="numbers">
          <thead><tr><th scope="col">Minute</th><th scope="col">Done</th><th scope="col">Dead</th><th scope="col">Event lag (mean / max)</th></tr></thead>
          <tbody>${slots.filter((s) => s.done + s.dead > 0).map((s) => html`
            <tr><th scope="row">${new Date(s.at).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}</th>
              <td>${s.done}</td><td>${s.dead}</td><td>${s.lagN ? `${duration(s.lagSum / s.lagN)} / ${duration(s.lagMax)}` : '–'}</td></tr>`)}
          </tbody>
        </table>
      </details>
    </figure>`;
}
