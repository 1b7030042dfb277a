// The robsond console's main module: reads /health and /console/* every
// 2 s, one round at a time, and draws the banner, the figures, the
// partitions, the instances, coverage and the last snapshot; the charts
// and the parked streams have modules of their own. Values from the daemon
// reach the page as text only (see dom.js).

import { $, el, cell, clear, pairs, num, secs, utc, ago, request } from './dom.js';
import { trend, mergeTrend, renderTrend } from './chart.js';
import { parked, parkedUrl, renderTokenState, setupParked, showParked } from './parked.js';

const REFRESH_MS = 2000;

const state = {
  overview: null,
  health: null,
  timer: null,
  running: false,
  again: false,
};

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
  if (o) parked.adminEnabled = enabled;
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

// Drift detection: the running check's last run (the streams and columns
// that differ are in GET /verify, which the read token may guard).
function renderVerify(o) {
  const box = $('verify');
  clear(box);
  const v = o && o.verify;
  if (!v) {
    box.append(el('p', 'muted', 'This daemon does not report drift checks.'));
    return;
  }
  if (!v.enabled) {
    box.append(el('p', 'muted', 'Drift detection is off (ROBSON_VERIFY_INTERVAL_SECS=0).'));
    return;
  }
  const run = v.last_run;
  const rows = [
    ['every', secs(v.interval_secs) + ', ' + num(v.sample) + ' streams'],
    ['streams differing now', num(v.mismatched_streams)],
  ];
  if (v.running_since) rows.push(['running since', utc(v.running_since)]);
  if (run) {
    rows.push(['last run', utc(run.finished_at) + ' (' + ago(run.finished_at) + ')']);
    rows.push(['checked / mismatched', num(run.checked) + ' / ' + num(run.mismatched)]);
    rows.push(['moving / unchecked', num(run.moving) + ' / ' + num(run.unchecked)]);
  } else {
    rows.push(['last run', 'none yet']);
  }
  const dl = el('dl', 'pairs');
  pairs(dl, rows);
  box.append(dl);
  if (v.mismatched_streams > 0) {
    box.append(el('p', 'result bad', 'Rows differ from the log: see GET /verify and the runbook "drift detected".'));
  }
}

// ---------------------------------------------------------------------
// The refresh loop: one round at a time, every 2 s.

async function refresh() {
  state.running = true;
  const since = trend.last === null ? '' : '?since=' + trend.last;
  const [health, overview, samples, page] = await Promise.allSettled([
    request('/health'),
    request('/console/overview'),
    request('/console/trend' + since),
    request(parkedUrl()),
  ]);
  const ok = (r) => (r.status === 'fulfilled' && r.value.body ? r.value : null);
  const h = ok(health);
  renderHealth(h && h.body && h.body.status ? h.body : null);
  const o = ok(overview);
  if (o && o.status === 200) renderOverview(o.body);
  const t = ok(samples);
  if (t && t.status === 200) mergeTrend(t.body);
  renderTrend();
  showParked(page.status === 'fulfilled' ? page.value : null);
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
  setupParked(refreshSoon);
  window.addEventListener('resize', renderTrend);
  refresh();
}

// A module runs once the document is parsed.
start();
