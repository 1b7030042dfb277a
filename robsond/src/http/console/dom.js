// The console's helpers: DOM nodes built from text only, number and time
// formats, and fetch with a timeout. Rule kept by every module of the page:
// a value from the daemon reaches the page through textContent or an
// attribute value, never through innerHTML.

const TIMEOUT_MS = 5000;

export const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------
// DOM helpers: text only.

export function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

export function cell(label, content, cls) {
  const td = el('td', cls);
  td.setAttribute('data-label', label);
  if (content instanceof Node) td.append(content);
  else if (content !== undefined && content !== null) td.textContent = String(content);
  return td;
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function pairs(dl, entries) {
  clear(dl);
  for (const [k, v] of entries) {
    dl.append(el('dt', null, k), el('dd', null, v === null || v === undefined ? '—' : v));
  }
}

export function num(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '—';
  return Number(n).toLocaleString('en-US');
}

export function secs(s) {
  if (s === null || s === undefined) return '—';
  if (s < 10) return s.toFixed(2) + ' s';
  if (s < 120) return s.toFixed(1) + ' s';
  if (s < 7200) return (s / 60).toFixed(1) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}

export function utc(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
}

export function ago(iso) {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return '';
  const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
  return secs(s) + ' ago';
}

// ---------------------------------------------------------------------
// HTTP.

export async function request(url, options) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  try {
    const response = await fetch(url, Object.assign({ signal: controller.signal, cache: 'no-store' }, options || {}));
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    return { status: response.status, body: body };
  } finally {
    clearTimeout(timer);
  }
}

export function errorText(res) {
  if (res.body && typeof res.body.error === 'string') return res.body.error;
  return 'HTTP ' + res.status;
}
