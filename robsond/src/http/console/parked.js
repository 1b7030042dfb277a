// Parked streams with their dead letters, paged, and the Retry and Skip
// buttons, which call the admin endpoints with the token the operator typed
// once (kept in this tab's sessionStorage).

import { $, el, cell, clear, num, utc, ago, request, errorText } from './dom.js';

const PAGE_SIZE = 20;
const TOKEN_KEY = 'robsond.adminToken';

/** Paging cursors and what the buttons need; `adminEnabled` is set from the overview. */
export const parked = {
  cursors: [null],
  page: 0,
  nextAfter: null,
  adminEnabled: false,
  confirming: null,
};

/** Asks for a new round of the page's refresh (set by `setupParked`). */
let refreshSoon = () => {};

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
// Parked streams, Retry and Skip.

export function parkedUrl() {
  const after = parked.cursors[parked.page];
  let url = '/console/parked?limit=' + PAGE_SIZE;
  if (after) url += '&after=' + encodeURIComponent(after);
  return url;
}

export function renderParked(res) {
  const error = $('parked-error');
  if (!res || res.status !== 200 || !res.body) {
    error.hidden = false;
    error.textContent = 'Parked streams could not be read: ' + (res ? errorText(res) : 'no answer');
    return;
  }
  error.hidden = true;
  const data = res.body;
  if (data.parked.length === 0 && parked.page > 0) {
    // The page emptied (its streams were resumed): show the one before.
    parked.page -= 1;
    refreshSoon();
    return;
  }
  parked.nextAfter = data.next_after;
  $('parked-count').textContent = '(' + num(data.total) + ')';
  $('parked-empty').hidden = data.parked.length > 0;
  $('parked-page').textContent = 'page ' + (parked.page + 1);
  $('parked-prev').disabled = parked.page === 0;
  $('parked-next').disabled = !parked.nextAfter;
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
  actions.hidden = !parked.adminEnabled;
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
    parked.confirming = p.stream_key;
    refreshParkedRowsOnly();
  });
  box.append(retry, skip);
  if (parked.confirming === p.stream_key && have) {
    const confirm = el('div', 'confirm');
    confirm.append(el('span', null, 'Skip seq ' + p.parked_seq + '? Its effect is dropped; the events behind it are applied. '));
    const yes = el('button', 'confirm-skip danger', 'Confirm skip');
    yes.type = 'button';
    yes.addEventListener('click', () => resume(p, 'skip'));
    const no = el('button', 'cancel', 'Cancel');
    no.type = 'button';
    no.addEventListener('click', () => {
      parked.confirming = null;
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
  parked.confirming = null;
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

export function renderTokenState() {
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

/** Installs the token form and pager; `soon` asks for a refresh. */
export function setupParked(soon) {
  refreshSoon = soon;
  $('token-form').addEventListener('submit', useToken);
  $('token-forget').addEventListener('click', () => {
    setToken('');
    showResult('Token forgotten.', false);
    renderTokenState();
    refreshSoon();
  });
  $('parked-prev').addEventListener('click', () => {
    if (parked.page > 0) parked.page -= 1;
    refreshSoon();
  });
  $('parked-next').addEventListener('click', () => {
    if (!parked.nextAfter) return;
    parked.cursors[parked.page + 1] = parked.nextAfter;
    parked.page += 1;
    refreshSoon();
  });
  renderTokenState();
}

/** Keeps the last answer, so that a click re-renders without asking again. */
export function showParked(res) {
  lastParked = res;
  renderParked(res);
}
