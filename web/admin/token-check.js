// "Test a token" on a messenger's Security tab (CONTRACT §15): paste a Contact JWT, and see
// authorize's checks on the messenger's current settings, the decoded header and claims, and a
// hint. Everything from the token is shown as text (textContent), never as HTML.
import { h, $, clear, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError } from '../shared/format.js';
import { api } from '../shared/session.js';

const ui = {
  panel: $('#token-check-panel'),
  form: $('#token-check-form'),
  input: $('#token-check-input'),
  submit: $('#token-check-submit'),
  preview: $('#token-check-preview'),
  error: $('#token-check-error'),
  result: $('#token-check-result'),
  verdict: $('#token-check-verdict'),
  hint: $('#token-check-hint'),
  list: $('#token-check-list'),
  header: $('#token-check-header'),
  claims: $('#token-check-claims'),
};

const state = { siteId: null, messengerId: null, canEdit: false, onSessionEnded: () => {} };

const MARKS = { true: '✓', false: '✗', null: '–' };
const STATES = { true: 'pass', false: 'fail', null: 'notrun' };
/** Claims that are NumericDates: shown with their date. */
const TIME_CLAIMS = new Set(['exp', 'iat', 'nbf']);

/** Called when a messenger is selected (and when the page leaves: siteId null). */
export function resetTokenCheck({ siteId = null, messengerId = null, canEdit = false, onSessionEnded } = {}) {
  state.siteId = siteId;
  state.messengerId = messengerId;
  state.canEdit = canEdit;
  if (onSessionEnded) state.onSessionEnded = onSessionEnded;
  ui.input.value = '';
  ui.input.disabled = !canEdit;
  ui.submit.disabled = !canEdit;
  ui.preview.disabled = !canEdit;
  setNotice(ui.error, canEdit ? '' : 'Only site admins can test tokens.', 'info');
  ui.result.hidden = true;
}

/** Shown with the Security tab only. */
export function showTokenCheck(visible) {
  ui.panel.hidden = !visible;
}

function path() {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}/messengers/${encodeURIComponent(state.messengerId)}/check-token`;
}

async function runCheck(event) {
  event.preventDefault();
  setNotice(ui.error, '');
  const token = ui.input.value;
  if (!token.trim()) {
    setNotice(ui.error, 'Paste a Contact JWT first.');
    ui.input.focus();
    return;
  }
  ui.submit.disabled = true;
  const messengerId = state.messengerId;
  try {
    const report = await api(path(), { method: 'POST', body: { contactJwt: token } });
    if (state.messengerId !== messengerId) return;
    render(report);
  } catch (err) {
    ui.result.hidden = true;
    if (err instanceof ApiError && err.status === 401) state.onSessionEnded();
    else if (err instanceof ApiError && err.status === 403) setNotice(ui.error, 'Only site admins can test tokens.');
    else setNotice(ui.error, describeError(err));
  } finally {
    ui.submit.disabled = !state.canEdit;
  }
}

/** The report (see CONTRACT §15) as text. */
export function render(report) {
  ui.result.hidden = false;
  ui.verdict.textContent = report.ok
    ? 'Accepted: authorize takes this token on the current settings.'
    : `Refused: ${report.code}`;
  ui.verdict.className = report.ok ? 'notice ok' : 'notice error';
  ui.verdict.dataset.ok = String(Boolean(report.ok));
  setNotice(ui.hint, report.hint || '', 'info');
  clear(ui.list);
  for (const row of report.checks || []) {
    const key = String(row.ok);
    ui.list.append(
      h(
        'li',
        { class: `check ${STATES[key]}`, 'data-testid': 'token-check-row', 'data-check': row.check, 'data-state': STATES[key] },
        h('span', { class: 'mark', 'aria-hidden': 'true', text: MARKS[key] }),
        h('span', { class: 'name', text: row.check }),
        h('span', { class: 'detail', text: row.ok === null ? 'not run' : row.detail }),
      ),
    );
  }
  ui.header.textContent = prettyJson(report.header || {});
  ui.claims.textContent = prettyJson(report.claims || {});
}

/** Pretty JSON with the date of each top-level exp, iat and nbf after its line. */
export function prettyJson(obj) {
  return JSON.stringify(obj, null, 2)
    .split('\n')
    .map((line) => {
      const m = /^ {2}"(\w+)": (-?\d+(?:\.\d+)?),?$/.exec(line);
      if (!m || !TIME_CLAIMS.has(m[1])) return line;
      return `${line}   // ${describeTime(Number(m[2]))}`;
    })
    .join('\n');
}

function describeTime(seconds) {
  // Beyond ±10^11 s the value is not a date in seconds (often milliseconds).
  if (!Number.isFinite(seconds) || Math.abs(seconds) > 1e11) return 'not a date in seconds (milliseconds?)';
  const date = new Date(seconds * 1000).toISOString().replace('.000Z', 'Z');
  const delta = Math.round(seconds - Date.now() / 1000);
  return `${date} (${relative(delta)})`;
}

function relative(delta) {
  const abs = Math.abs(delta);
  const amount = abs < 120 ? `${abs} s` : abs < 7200 ? `${Math.round(abs / 60)} min` : abs < 172800 ? `${Math.round(abs / 3600)} h` : `${Math.round(abs / 86400)} days`;
  return delta >= 0 ? `in ${amount}` : `${amount} ago`;
}

/**
 * Preview the messenger in this page with the pasted token (isPreview: a preview conversation,
 * kept out of agents' queues). When authorize refuses it, the loader runs this same check with
 * the admin's session and prints it to the browser console (see loader.js, "preview").
 */
function preview() {
  const token = ui.input.value.trim();
  if (!token) {
    setNotice(ui.error, 'Paste a Contact JWT first.');
    return;
  }
  const start = () => {
    window.Confidant.shutdown();
    window.Confidant.init({ siteId: state.siteId, messengerId: state.messengerId, contactJwt: token, preview: true });
    window.Confidant.open();
  };
  if (window.Confidant) {
    start();
    return;
  }
  const script = document.createElement('script');
  script.src = '/messenger/v1/loader.js';
  script.addEventListener('load', start);
  document.head.append(script);
}

ui.form.addEventListener('submit', runCheck);
ui.preview.addEventListener('click', preview);
