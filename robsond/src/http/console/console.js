// The robsond console: reads /health and /console/* every 2 s and draws the
// page. Rule kept throughout: every value that comes from the daemon (stream
// keys, event types, error texts, instance names) reaches the page through
// textContent or an attribute value, never through innerHTML, so that a
// value holding markup is shown as text.
'use strict';

(function () {
  const REFRESH_MS = 2000;
  const TIMEOUT_MS = 5000;
  const WINDOW_MS = 15 * 60 * 1000;
  const PAGE_SIZE = 20;
  const TOKEN_KEY = 'robsond.adminToken';
  const SVG = 'http://www.w3.org/2000/svg';

  const $ = (id) => document.getElementById(id);

  // ---------------------------------------------------------------------
  // DOM helpers: text only.

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function cell(label, content, cls) {
    const td = el('td', cls);
    td.setAttribute('data-label', label);
    if (content instanceof Node) td.append(content);
    else if (content !== undefined && content !== null) td.textContent = String(content);
    return td;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function pairs(dl, entries) {
    clear(dl);
    for (const [k, v] of entries) {
      dl.append(el('dt', null, k), el('dd', null, v === null || v === undefined ? '—' : v));
    }
  }

  function num(n) {
    if (n === null || n === undefined || Number.isNaN(n)) return '—';
    return Number(n).toLocaleString('en-US');
  }

  function secs(s) {
    if (s === null || s === undefined) return '—';
    if (s < 10) return s.toFixed(2) + ' s';
    if (s < 120) return s.toFixed(1) + ' s';
    if (s < 7200) return (s / 60).toFixed(1) + ' min';
    return (s / 3600).toFixed(1) + ' h';
  }

  function utc(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    if (Number.isNaN(d.getTime())) return String(iso);
    return d.toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
  }

  function ago(iso) {
    const d = new Date(iso);
    if (!iso || Number.isNaN(d.getTime())) return '';
    const s = Math.max(0, (Date.now() - d.getTime()) / 1000);
    return secs(s) + ' ago';
  }

  // ---------------------------------------------------------------------
  // HTTP.

  async function request(url, options) {
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

  function errorText(res) {
    if (res.body && typeof res.body.error === 'string') return res.body.error;
    return 'HTTP ' + res.status;
  }

  // ---------------------------------------------------------------------
  // State.

  const state = {
    trend: [],
    lastSample: null,
    serverNow: null,
    cursors: [null],
    page: 0,
    nextAfter: null,
    overview: null,
    health: null,
    adminEnabled: false,
    confirming: null,
    timer: null,
    running: false,
    again: false,
  };

  function token() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || '';
    } catch (_) {
      return '';
    }
  }

  function setToken(value) {
    try {
      if (value) sessionStorage.setItem(TOKEN_KEY, value);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (_) {
      // Storage refused (private mode): the token lasts as long as the page.
    }
    memoryToken = value;
  }

  let memoryToken = token();

  // ---------------------------------------------------------------------
  // Banner and figures.

  function renderHealth(h) {
    state.health = h;
    const banner = $('banner');
    const status = h ? h.status : 'down';
    banner.className = 'banner status-' + (['ok', 'degraded', 'down'].includes(status) ? status : 'unknown');
    $('status').textContent = h ? status : 'unreachable';
    $('database').textContent = h ? 'database ' + h.database : 'the daemon does not answer';
    $('sampled').textContent = h && h.sampled_at ? 'sampled ' + utc(h.sampled_at) : '';
    $('instance').textContent = h ? h.instance : '…';
    const reasons = $('reasons');
    clear(reasons);
    for (const r of (h && h.reasons) || []) reasons.append(el('li', null, r));
    const blocked = h && h.blocked_by;
    $('blocked').hidden = !blocked;
    if (blocked) {
      pairs($('blocked-details'), [
        ['pid', blocked.pid],
        ['application', blocked.application_name],
        ['client', blocked.client_addr],
        ['state', blocked.state],
        ['open for', secs(blocked.xact_age_seconds)],
        ['query', blocked.query],
        ['note', blocked.note],
      ].filter(([k, v]) => k !== 'note' || v));
    }
    renderTiles(h);
    renderPartitions(h);
    renderCoverage(h);
  }

  function renderTiles(h) {
    const tiles = $('tiles');
    clear(tiles);
    const items = [
      ['Lag, events', h ? num(h.lag_events) : '—'],
      ['Lag, seconds', h ? secs(h.lag_seconds) : '—'],
      ['Largest stream lag', h ? num(h.max_stream_lag) : '—'],
      ['Parked streams', h ? num(h.parked_streams) : '—'],
      ['Held events', h ? num(h.held_events) : '—'],
      ['Head position', h ? num(h.head_position) : '—'],
      ['Heartbeat age', h ? secs(h.heartbeat_age_seconds) : '—'],
    ];
    for (const [label, value] of items) {
      const t = el('div', 'tile');
      t.append(el('div', 'label', label), el('div', 'value', value));
      tiles.append(t);
    }
  }

  function renderPartitions(h) {
    const body = $('partitions-body');
    clear(body);
    for (const p of (h && h.partitions) || []) {
      const tr = el('tr', p.owner && p.owner === h.instance ? 'mine' : null);
      const owner = p.owner === null || p.owner === undefined ? 'nobody' : p.owner;
      tr.append(
        cell('Partition', p.partition),
        cell('Owner', owner + (p.owner === h.instance ? ' (this instance)' : ''), 'owner'),
        cell('Checkpoint', num(p.checkpoint)),
        cell('Lag, events', num(p.lag_events)),
        cell('State', p.state, stateClass(p.state)),
        cell('Restarts', num(p.restarts)),
      );
      body.append(tr);
    }
    renderInstances();
  }

  // A partition another instance runs is "not owned" here: not a problem.
  function stateClass(s) {
    if (s === 'running') return 'state-running';
    if (s === 'not owned' || s === 'starting' || s === 'drained') return 'muted';
    return 'state-other';
  }

  function renderCoverage(h) {
    const body = $('coverage-body');
    clear(body);
    for (const c of (h && h.partition_coverage) || []) {
      const tr = el('tr');
      tr.append(
        cell('Table', c.table_name, 'mono'),
        cell('Months ahead', c.months_ahead, c.months_ahead >= 2 ? 'cov-ok' : 'cov-low'),
        cell('Status', c.status),
      );
      body.append(tr);
    }
  }

  // ---------------------------------------------------------------------
  // Overview: instances, last snapshot, admin.

  function renderOverview(o) {
    state.overview = o;
    const enabled = !!(o && o.admin_enabled);
    if (o) state.adminEnabled = enabled;
    $('admin-off').hidden = !o || enabled;
    $('admin-off').textContent =
      'Retry and Skip are off: this daemon has no admin token (ROBSON_ADMIN_TOKEN is not set), ' +
      'so its admin endpoints are disabled. Use `robsond streams retry|skip KEY`, ' +
      'or set ROBSON_ADMIN_TOKEN and restart the daemon.';
    $('token-form').hidden = !enabled;
    for (const e of document.querySelectorAll('.admin-only')) e.hidden = !enabled;
    renderTokenState();
    renderInstances();
    renderSnapshot(o);
    renderVerify(o);
  }

  function renderInstances() {
    const o = state.overview;
    const h = state.health;
    const body = $('instances-body');
    const note = $('instances-note');
    clear(body);
    const list = o && o.instances;
    note.hidden = !!list;
    if (!list) {
      note.textContent = o && o.unavailable && o.unavailable.length
        ? o.unavailable.join('; ')
        : 'Not known yet.';
      return;
    }
    const owned = {};
    for (const p of (h && h.partitions) || []) {
      if (p.owner) owned[p.owner] = (owned[p.owner] || 0) + 1;
    }
    for (const m of list) {
      const mine = h && m.instance === h.instance;
      const tr = el('tr', mine ? 'mine' : null);
      tr.append(
        cell('Instance', m.instance + (mine ? ' (this instance)' : ''), 'owner'),
        cell('Partitions owned', num(owned[m.instance] || 0)),
        cell('Configured', num(m.configured_partitions)),
        cell('Connected since', utc(m.since)),
        cell('Address', m.client_addr || 'local socket', 'mono'),
      );
      body.append(tr);
    }
  }

  function renderSnapshot(o) {
    const s = o && o.last_snapshot;
    if (!o) return;
    if (!s) {
      pairs($('snapshot'), [['snapshot', 'none taken yet (robsond snapshot)']]);
      return;
    }
    pairs($('snapshot'), [
      ['id', s.snapshot_id],
      ['position', num(s.position)],
      ['taken at', utc(s.taken_at) + ' (' + ago(s.taken_at) + ')'],
      ['rows', num(s.rows)],
    ]);
  }

  // H18 (drift detection, GET /verify) reports here once the daemon has it.
  function renderVerify(o) {
    const box = $('verify');
    clear(box);
    if (o && o.verify) {
      const v = o.verify;
      const dl = el('dl', 'pairs');
      pairs(dl, Object.keys(v).map((k) => [k, typeof v[k] === 'object' ? JSON.stringify(v[k]) : v[k]]));
      box.append(dl);
    } else {
      box.append(el('p', 'muted', 'This daemon does not report drift checks.'));
    }
  }

  // ---------------------------------------------------------------------
  // Trend charts (inline SVG).

  function mergeTrend(t) {
    if (!t || !Array.isArray(t.samples)) return;
    state.serverNow = t.now;
    for (const s of t.samples) {
      if (state.lastSample === null || s.t > state.lastSample) {
        state.trend.push(s);
        state.lastSample = s.t;
      }
    }
    const oldest = t.now - WINDOW_MS;
    while (state.trend.length && (state.trend[0].t < oldest || state.trend.length > t.capacity)) {
      state.trend.shift();
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
    const end = state.serverNow || Date.now();
    const start = end - WINDOW_MS;
    let max = 0;
    let any = false;
    for (const s of series) {
      for (const sample of state.trend) {
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
      for (const sample of state.trend) {
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

  function renderTrend() {
    drawChart($('chart-lag-events'), [{ cls: 's-lag', value: (s) => s.lag_events }], 'events');
    drawChart($('chart-lag-seconds'), [{ cls: 's-lag', value: (s) => s.lag_seconds }], 's');
    drawChart($('chart-throughput'), [
      { cls: 's-applied', value: (s) => s.applied },
      { cls: 's-skipped', value: (s) => s.skipped },
      { cls: 's-dead', value: (s) => s.dead_lettered },
    ], 'events');
    const last = state.trend[state.trend.length - 1];
    $('now-lag-events').textContent = last ? num(last.lag_events) : '';
    $('now-lag-seconds').textContent = last && last.lag_seconds !== null ? secs(last.lag_seconds) : '';
    $('now-applied').textContent = last ? last.applied.toFixed(1) + '/s' : '';
    $('now-skipped').textContent = last ? last.skipped.toFixed(1) + '/s' : '';
    $('now-dead').textContent = last ? last.dead_lettered.toFixed(1) + '/s' : '';
  }

  // ---------------------------------------------------------------------
  // Parked streams, Retry and Skip.

  function parkedUrl() {
    const after = state.cursors[state.page];
    let url = '/console/parked?limit=' + PAGE_SIZE;
    if (after) url += '&after=' + encodeURIComponent(after);
    return url;
  }

  function renderParked(res) {
    const error = $('parked-error');
    if (!res || res.status !== 200 || !res.body) {
      error.hidden = false;
      error.textContent = 'Parked streams could not be read: ' + (res ? errorText(res) : 'no answer');
      return;
    }
    error.hidden = true;
    const data = res.body;
    if (data.parked.length === 0 && state.page > 0) {
      // The page emptied (its streams were resumed): show the one before.
      state.page -= 1;
      refreshSoon();
      return;
    }
    state.nextAfter = data.next_after;
    $('parked-count').textContent = '(' + num(data.total) + ')';
    $('parked-empty').hidden = data.parked.length > 0;
    $('parked-page').textContent = 'page ' + (state.page + 1);
    $('parked-prev').disabled = state.page === 0;
    $('parked-next').disabled = !state.nextAfter;
    const body = $('parked-body');
    clear(body);
    for (const p of data.parked) body.append(parkedRow(p));
  }

  function parkedRow(p) {
    const tr = el('tr', 'parked-row');
    tr.setAttribute('data-key', p.stream_key);
    const key = el('div');
    key.append(el('span', 'key-text', p.stream_key), el('span', 'sub', 'tenant ' + p.tenant_id));
    const seq = el('div');
    seq.append(el('span', null, num(p.parked_seq)),
      el('span', 'sub', num(Math.max(0, p.head_seq - p.parked_seq)) + ' waiting behind it'));
    const failed = el('div');
    failed.append(el('span', null, utc(p.failed_at)), el('span', 'sub', ago(p.failed_at)));
    tr.append(
      cell('Stream', key, 'stream'),
      cell('Seq', seq, 'seq'),
      cell('Event type', p.event_type, 'event-type mono'),
      cell('Error kind', el('span', 'kind', p.error_kind), 'error-kind'),
      cell('Error', el('div', 'error-text', p.error), 'error'),
      cell('Failed at', failed, 'failed-at'),
      cell('Attempts', num(p.attempts), 'attempts'),
    );
    const actions = cell('Actions', null, 'admin-only');
    actions.hidden = !state.adminEnabled;
    actions.append(actionButtons(p));
    tr.append(actions);
    return tr;
  }

  function actionButtons(p) {
    const box = el('div', 'actions');
    const have = !!memoryToken;
    const retry = el('button', 'retry', 'Retry');
    retry.type = 'button';
    retry.disabled = !have;
    retry.title = have ? 'Re-attempt seq ' + p.parked_seq : 'Enter the admin token above first';
    retry.addEventListener('click', () => resume(p, 'retry'));
    const skip = el('button', 'skip danger', 'Skip');
    skip.type = 'button';
    skip.disabled = !have;
    skip.title = have ? 'Pass over seq ' + p.parked_seq : 'Enter the admin token above first';
    skip.addEventListener('click', () => {
      state.confirming = p.stream_key;
      refreshParkedRowsOnly();
    });
    box.append(retry, skip);
    if (state.confirming === p.stream_key && have) {
      const confirm = el('div', 'confirm');
      confirm.append(el('span', null, 'Skip seq ' + p.parked_seq + '? Its effect is dropped; the events behind it are applied. '));
      const yes = el('button', 'confirm-skip danger', 'Confirm skip');
      yes.type = 'button';
      yes.addEventListener('click', () => resume(p, 'skip'));
      const no = el('button', 'cancel', 'Cancel');
      no.type = 'button';
      no.addEventListener('click', () => {
        state.confirming = null;
        refreshParkedRowsOnly();
      });
      confirm.append(yes, no);
      box.append(confirm);
    }
    return box;
  }

  let lastParked = null;

  function refreshParkedRowsOnly() {
    if (lastParked) renderParked(lastParked);
  }

  function showResult(text, bad) {
    const r = $('action-result');
    r.textContent = text;
    r.className = 'result' + (bad ? ' bad' : '');
  }

  async function resume(p, action) {
    state.confirming = null;
    const t = memoryToken;
    if (!t) {
      showResult('Enter the admin token first.', true);
      return;
    }
    const url = '/admin/streams/' + encodeURIComponent(p.stream_key) + '/' + action;
    let res;
    try {
      res = await request(url, { method: 'POST', headers: { Authorization: 'Bearer ' + t } });
    } catch (e) {
      showResult(action + ' of ' + p.stream_key + ' failed: the daemon did not answer', true);
      return;
    }
    if (res.status === 200) {
      const done = action === 'skip' ? 'Skipped' : 'Retrying';
      showResult(done + ' seq ' + p.parked_seq + ' of ' + p.stream_key + '.', false);
    } else if (res.status === 401) {
      setToken('');
      showResult('The admin token was refused; enter it again.', true);
      renderTokenState();
    } else {
      showResult(action + ' of ' + p.stream_key + ' refused: ' + errorText(res), true);
    }
    refreshSoon();
  }

  function renderTokenState() {
    $('token-state').textContent = memoryToken ? 'token set for this tab' : 'no token entered';
    $('token-forget').disabled = !memoryToken;
  }

  async function useToken(ev) {
    ev.preventDefault();
    const input = $('token');
    const value = input.value.trim();
    input.value = '';
    if (!value) return;
    // Checked once against an admin endpoint, so a typo shows at once.
    let res;
    try {
      res = await request('/admin/parked', { headers: { Authorization: 'Bearer ' + value } });
    } catch (_) {
      showResult('Could not check the token: the daemon did not answer.', true);
      return;
    }
    if (res.status === 200) {
      setToken(value);
      showResult('Token accepted; Retry and Skip are available.', false);
    } else {
      setToken('');
      showResult('Token refused: ' + errorText(res), true);
    }
    renderTokenState();
    refreshSoon();
  }

  // ---------------------------------------------------------------------
  // The refresh loop: one round at a time, every 2 s.

  async function refresh() {
    state.running = true;
    const since = state.lastSample === null ? '' : '?since=' + state.lastSample;
    const [health, overview, trend, parked] = await Promise.allSettled([
      request('/health'),
      request('/console/overview'),
      request('/console/trend' + since),
      request(parkedUrl()),
    ]);
    const ok = (r) => r.status === 'fulfilled' && r.value.body ? r.value : null;
    const h = ok(health);
    renderHealth(h && h.body && h.body.status ? h.body : null);
    const o = ok(overview);
    if (o && o.status === 200) renderOverview(o.body);
    const t = ok(trend);
    if (t && t.status === 200) mergeTrend(t.body);
    renderTrend();
    lastParked = parked.status === 'fulfilled' ? parked.value : null;
    renderParked(lastParked);
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString();
    state.running = false;
    if (state.again) {
      state.again = false;
      refreshSoon();
    } else {
      schedule(REFRESH_MS);
    }
  }

  function schedule(ms) {
    clearTimeout(state.timer);
    state.timer = setTimeout(refresh, ms);
  }

  function refreshSoon() {
    if (state.running) state.again = true;
    else schedule(0);
  }

  function start() {
    $('token-form').addEventListener('submit', useToken);
    $('token-forget').addEventListener('click', () => {
      setToken('');
      showResult('Token forgotten.', false);
      renderTokenState();
      refreshSoon();
    });
    $('parked-prev').addEventListener('click', () => {
      if (state.page > 0) state.page -= 1;
      refreshSoon();
    });
    $('parked-next').addEventListener('click', () => {
      if (!state.nextAfter) return;
      state.cursors[state.page + 1] = state.nextAfter;
      state.page += 1;
      refreshSoon();
    });
    window.addEventListener('resize', renderTrend);
    renderTokenState();
    refresh();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
