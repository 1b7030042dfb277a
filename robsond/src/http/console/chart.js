// The trend charts: the last 15 minutes of /console/trend, kept in the page
// and drawn as inline SVG (three line charts need no library).

import { $, clear, num, secs } from './dom.js';

const WINDOW_MS = 15 * 60 * 1000;
const SVG = 'http://www.w3.org/2000/svg';

/** The samples held by the page, and the daemon's clock of the last answer. */
export const trend = { samples: [], last: null, now: null };

// ---------------------------------------------------------------------
// Trend charts (inline SVG).

export function mergeTrend(t) {
  if (!t || !Array.isArray(t.samples)) return;
  trend.now = t.now;
  for (const s of t.samples) {
    if (trend.last === null || s.t > trend.last) {
      trend.samples.push(s);
      trend.last = s.t;
    }
  }
  const oldest = t.now - WINDOW_MS;
  while (trend.samples.length && (trend.samples[0].t < oldest || trend.samples.length > t.capacity)) {
    trend.samples.shift();
  }
}

function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k of Object.keys(attrs || {})) e.setAttribute(k, String(attrs[k]));
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function axisLabel(v, unit) {
  if (unit === 's') return secs(v);
  if (v >= 1e6) return (v / 1e6).toFixed(1) + 'M';
  if (v >= 1e4) return (v / 1e3).toFixed(0) + 'k';
  return String(Math.round(v * 100) / 100);
}

function drawChart(svg, series, unit) {
  clear(svg);
  const w = Math.max(200, svg.getBoundingClientRect().width || 600);
  const h = 170;
  svg.setAttribute('viewBox', '0 0 ' + w + ' ' + h);
  const m = { l: 52, r: 8, t: 8, b: 20 };
  const end = trend.now || Date.now();
  const start = end - WINDOW_MS;
  let max = 0;
  let any = false;
  for (const s of series) {
    for (const sample of trend.samples) {
      const v = s.value(sample);
      if (v !== null && v !== undefined) {
        any = true;
        if (v > max) max = v;
      }
    }
  }
  const top = niceMax(max);
  const x = (t) => m.l + ((t - start) / WINDOW_MS) * (w - m.l - m.r);
  const y = (v) => h - m.b - (v / top) * (h - m.t - m.b);
  for (let i = 0; i <= 4; i++) {
    const v = (top * i) / 4;
    svg.append(svgEl('line', { class: 'grid', x1: m.l, x2: w - m.r, y1: y(v), y2: y(v) }));
    svg.append(svgEl('text', { class: 'axis', x: m.l - 4, y: y(v) + 4, 'text-anchor': 'end' }, axisLabel(v, unit)));
  }
  for (const [minutes, anchor] of [[15, 'start'], [10, 'middle'], [5, 'middle'], [0, 'end']]) {
    const t = end - minutes * 60000;
    const label = minutes === 0 ? 'now' : '−' + minutes + ' min';
    svg.append(svgEl('text', { class: 'axis', x: x(t), y: h - 4, 'text-anchor': anchor }, label));
  }
  if (!any) {
    svg.append(svgEl('text', { class: 'nodata', x: w / 2, y: h / 2, 'text-anchor': 'middle' }, 'no samples yet'));
    return;
  }
  for (const s of series) {
    let d = '';
    let pen = false;
    for (const sample of trend.samples) {
      const v = s.value(sample);
      if (v === null || v === undefined || sample.t < start) {
        pen = false;
        continue;
      }
      d += (pen ? 'L' : 'M') + x(sample.t).toFixed(1) + ' ' + y(v).toFixed(1);
      pen = true;
    }
    if (d) svg.append(svgEl('path', { class: s.cls, d: d }));
  }
}

export function renderTrend() {
  drawChart($('chart-lag-events'), [{ cls: 's-lag', value: (s) => s.lag_events }], 'events');
  drawChart($('chart-lag-seconds'), [{ cls: 's-lag', value: (s) => s.lag_seconds }], 's');
  drawChart($('chart-throughput'), [
    { cls: 's-applied', value: (s) => s.applied },
    { cls: 's-skipped', value: (s) => s.skipped },
    { cls: 's-dead', value: (s) => s.dead_lettered },
  ], 'events');
  const last = trend.samples[trend.samples.length - 1];
  $('now-lag-events').textContent = last ? num(last.lag_events) : '';
  $('now-lag-seconds').textContent = last && last.lag_seconds !== null ? secs(last.lag_seconds) : '';
  $('now-applied').textContent = last ? last.applied.toFixed(1) + '/s' : '';
  $('now-skipped').textContent = last ? last.skipped.toFixed(1) + '/s' : '';
  $('now-dead').textContent = last ? last.dead_lettered.toFixed(1) + '/s' : '';
}
