// The Audit log section of the site administration (CONTRACT §13): the newest entries first,
// paged, filtered by action on the page shown, and "Verify chain", which recomputes every
// entry's hash on the server and names the first entry that was altered or removed.
import { h, $, clear, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError, formatDateTime } from '../shared/format.js';
import { api } from '../shared/session.js';

const PAGE = 50;

const ui = {
  body: $('#audit-entries'),
  empty: $('#audit-empty'),
  error: $('#audit-error'),
  range: $('#audit-range'),
  newer: $('#audit-newer'),
  older: $('#audit-older'),
  newest: $('#audit-newest'),
  filter: $('#audit-filter'),
  verify: $('#audit-verify'),
  verdict: $('#audit-verdict'),
};

// `top`: the seq of the newest entry shown (the page shows top-PAGE+1 … top).
const state = { siteId: null, canRead: false, top: null, last: 0, entries: [], onSessionEnded: () => {} };

function path(rest) {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}/audit${rest}`;
}

function report(err) {
  if (err instanceof ApiError && err.status === 401) {
    state.onSessionEnded();
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    setNotice(ui.error, 'Only site admins can read the audit log.');
    return;
  }
  setNotice(ui.error, describeError(err));
}

/** Called when the Audit log section opens. */
export function showAudit({ siteId, canEdit, onSessionEnded }) {
  state.siteId = siteId;
  state.canRead = canEdit;
  state.onSessionEnded = onSessionEnded;
  setNotice(ui.verdict, '');
  load(null);
}

export function resetAudit() {
  state.entries = [];
  state.top = null;
  clear(ui.body);
  setNotice(ui.verdict, '');
}

async function load(top) {
  setNotice(ui.error, '');
  if (!state.canRead) {
    clear(ui.body);
    ui.empty.hidden = false;
    ui.empty.textContent = 'Only site admins can read the audit log.';
    ui.verify.disabled = true;
    return;
  }
  ui.verify.disabled = false;
  try {
    // The newest page needs the newest seq first (an empty read answers it).
    if (top === null) {
      const head = await api(path('?after=0&limit=1'));
      top = head.lastSeq;
    }
    const after = Math.max(0, top - PAGE);
    const data = await api(path(`?after=${after}&limit=${top - after}`));
    state.last = data.lastSeq;
    state.top = top;
    state.entries = (data.entries || []).slice().reverse();
    render();
  } catch (err) {
    report(err);
  }
}

function describeActor(actor) {
  if (!actor) return '';
  if (actor.type === 'agent') return actor.email || actor.id || 'agent';
  if (actor.type === 'operator') return 'Operator';
  return 'System';
}

function describeTarget(target) {
  if (!target || typeof target !== 'object') return '';
  return Object.entries(target)
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : typeof v === 'object' && v !== null ? JSON.stringify(v) : v}`)
    .join(' · ');
}

function render() {
  clear(ui.body);
  const word = ui.filter.value.trim().toLowerCase();
  const shown = state.entries.filter((e) => !word || e.action.toLowerCase().includes(word));
  for (const e of shown) {
    ui.body.append(
      h('tr', { 'data-testid': 'audit-entry', 'data-seq': e.seq },
        h('td', { class: 'mono', text: e.seq }),
        h('td', { text: formatDateTime(e.at) }),
        h('td', { text: describeActor(e.actor) }),
        h('td', { class: 'mono', text: e.action, 'data-testid': 'audit-action' }),
        h('td', { class: 'small', text: describeTarget(e.target) }),
        h('td', { class: 'mono small', text: e.ip || '' }),
      ),
    );
  }
  ui.empty.hidden = shown.length > 0;
  ui.empty.textContent = state.last === 0 ? 'No entries yet.' : 'No entry on this page matches.';
  const low = Math.max(1, state.top - PAGE + 1);
  ui.range.textContent = state.last === 0 ? '' : `Entries ${low}–${state.top} of ${state.last}`;
  ui.newer.disabled = state.top >= state.last;
  ui.newest.disabled = state.top >= state.last;
  ui.older.disabled = low <= 1;
}

async function verifyChain() {
  ui.verify.disabled = true;
  setNotice(ui.verdict, 'Verifying every entry…', 'info');
  try {
    const v = await api(path('/verify'));
    if (v.ok) {
      setNotice(ui.verdict, `The chain is whole: ${v.entries} entries verified, none altered or missing.`, 'ok');
    } else {
      setNotice(ui.verdict, `The chain is broken at entry ${v.brokenSeq}: that entry was altered or removed after it was written (${v.entries} entries read).`, 'error');
    }
  } catch (err) {
    setNotice(ui.verdict, '');
    report(err);
  } finally {
    ui.verify.disabled = false;
  }
}

ui.verify.addEventListener('click', verifyChain);
ui.filter.addEventListener('input', render);
ui.newer.addEventListener('click', () => load(Math.min(state.last, state.top + PAGE)));
ui.older.addEventListener('click', () => load(Math.max(1, state.top - PAGE)));
ui.newest.addEventListener('click', () => load(null));
