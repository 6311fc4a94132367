// The agent's own account page (CONTRACT §12): two-factor authentication (TOTP) set-up with a
// QR code drawn here in the browser (the secret comes only in the set-up answer and goes
// nowhere else), and the agent's sessions with "End" on each.
import { h, $, clear, setNotice } from '../../shared/dom.js';
import { ApiError } from '../../shared/http.js';
import { describeError, formatDateTime } from '../../shared/format.js';
import { api } from '../../shared/session.js';
import { startAgentPage } from '../../shared/login.js';
import qrcode from '../../shared/vendor/qrcode-generator.js';

const SVG = 'http://www.w3.org/2000/svg';

const ui = {
  error: $('#app-error'),
  setupRequired: $('#setup-required'),
  status: $('#totp-status'),
  start: $('#totp-start'),
  setup: $('#totp-setup'),
  qr: $('#totp-qr'),
  secret: $('#totp-secret'),
  confirm: $('#totp-confirm'),
  code: $('#totp-code'),
  confirmSubmit: $('#totp-confirm-submit'),
  totpError: $('#totp-error'),
  continueLink: $('#totp-continue'),
  sessionsBody: $('#sessions-body'),
  sessionsError: $('#sessions-error'),
  adminLink: $('#admin-link'),
};

const state = { agent: null, totpEnabled: false, setupRequired: false };

function report(err, where = ui.error) {
  if (err instanceof ApiError && err.status === 401) {
    page.sessionEnded();
    return;
  }
  setNotice(where, describeError(err));
}

/** The QR code of `text` as an SVG of dark squares (attributes only: the page's CSP allows no inline styles). */
function qrSvg(text) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;
  const size = n + quiet * 2;
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', `0 0 ${size} ${size}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code for your authenticator app');
  svg.setAttribute('shape-rendering', 'crispEdges');
  const bg = document.createElementNS(SVG, 'rect');
  bg.setAttribute('width', String(size));
  bg.setAttribute('height', String(size));
  bg.setAttribute('fill', '#fff');
  svg.append(bg);
  let d = '';
  for (let r = 0; r < n; r += 1) {
    for (let c = 0; c < n; c += 1) {
      if (qr.isDark(r, c)) d += `M${c + quiet} ${r + quiet}h1v1h-1z`;
    }
  }
  const path = document.createElementNS(SVG, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', '#000');
  svg.append(path);
  return svg;
}

/** The secret in groups of four, as authenticator apps show keys. */
function grouped(secret) {
  return secret.replace(/(.{4})(?=.)/g, '$1 ');
}

function showTotpState() {
  ui.setupRequired.hidden = !state.setupRequired;
  ui.adminLink.hidden = state.setupRequired;
  if (state.totpEnabled) {
    setNotice(ui.status, 'Two-factor authentication is on. To move it to a new phone or turn it off, ask an admin of your site to reset it.', 'ok');
    ui.start.hidden = true;
    ui.setup.hidden = true;
  } else {
    setNotice(ui.status, 'Two-factor authentication is off.', state.setupRequired ? 'warn' : 'info');
    ui.start.hidden = !ui.setup.hidden;
  }
}

async function startSetup() {
  setNotice(ui.totpError, '');
  ui.start.disabled = true;
  try {
    const data = await api('/api/v1/auth/totp/setup', { method: 'POST' });
    clear(ui.qr);
    ui.qr.append(qrSvg(data.otpauthUrl));
    ui.secret.textContent = grouped(data.secret);
    ui.secret.dataset.secret = data.secret;
    ui.setup.hidden = false;
    ui.start.hidden = true;
    ui.code.value = '';
    ui.code.focus();
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      state.totpEnabled = true;
      showTotpState();
      return;
    }
    report(err);
  } finally {
    ui.start.disabled = false;
  }
}

async function confirmSetup(event) {
  event.preventDefault();
  setNotice(ui.totpError, '');
  const code = ui.code.value.replace(/\s/g, '');
  if (!/^\d{6}$/.test(code)) {
    setNotice(ui.totpError, 'The code is the 6 digits your authenticator app shows.');
    ui.code.focus();
    return;
  }
  ui.confirmSubmit.disabled = true;
  try {
    await api('/api/v1/auth/totp/confirm', { method: 'POST', body: { code } });
    const wasRequired = state.setupRequired;
    state.totpEnabled = true;
    state.setupRequired = false;
    clear(ui.qr);
    ui.secret.textContent = '';
    delete ui.secret.dataset.secret;
    showTotpState();
    setNotice(ui.status, 'Two-factor authentication is on. From now on, signing in asks for a code from your app.', 'ok');
    ui.continueLink.hidden = !wasRequired;
  } catch (err) {
    if (err instanceof ApiError && err.status === 400) {
      setNotice(ui.totpError, 'That code does not match. Check that the phone\'s clock is right, wait for the next code and try again.');
      ui.code.select();
      return;
    }
    report(err, ui.totpError);
  } finally {
    ui.confirmSubmit.disabled = false;
  }
}

async function loadSessions() {
  setNotice(ui.sessionsError, '');
  try {
    const data = await api('/api/v1/auth/sessions');
    renderSessions((data && data.sessions) || []);
  } catch (err) {
    report(err, ui.sessionsError);
  }
}

function renderSessions(sessions) {
  clear(ui.sessionsBody);
  for (const s of sessions) {
    const end = h('button', {
      type: 'button',
      class: s.current ? 'secondary' : 'danger',
      'data-testid': 'end-session',
      'data-session-id': s.sessionId,
      text: s.current ? 'Sign out' : 'End',
    });
    end.addEventListener('click', () => endSession(s));
    ui.sessionsBody.append(
      h(
        'tr',
        { 'data-testid': 'session-item', 'data-session-id': s.sessionId, 'data-current': String(Boolean(s.current)) },
        h(
          'td',
          { class: 'device', title: s.userAgent || '' },
          s.current ? h('span', { class: 'tag ok', 'data-testid': 'this-device', text: 'This device' }) : null,
          s.current ? ' ' : null,
          s.userAgent || 'Unknown browser',
        ),
        h('td', { class: 'mono', text: s.ip || '—' }),
        h('td', { text: formatDateTime(s.createdAt) }),
        h('td', { text: formatDateTime(s.lastSeenAt) }),
        h('td', {}, end),
      ),
    );
  }
}

async function endSession(s) {
  const what = s.current ? 'Sign out on this device?' : 'End this session? That browser or device is signed out at once.';
  // eslint-disable-next-line no-alert
  if (!window.confirm(what)) return;
  try {
    await api(`/api/v1/auth/sessions/${encodeURIComponent(s.sessionId)}`, { method: 'DELETE' });
    if (s.current) {
      page.sessionEnded();
      return;
    }
    loadSessions();
  } catch (err) {
    report(err, ui.sessionsError);
  }
}

async function enter(agent) {
  state.agent = agent;
  setNotice(ui.error, '');
  if (!agent) {
    setNotice(ui.error, 'The operator token has no account of its own. Sign in as an agent to set up two-factor authentication.', 'info');
    return;
  }
  try {
    const me = await api('/api/v1/auth/me');
    state.totpEnabled = Boolean(me && me.totpEnabled);
    state.setupRequired = Boolean(me && me.totpSetupRequired);
  } catch (err) {
    report(err);
    return;
  }
  showTotpState();
  if (state.setupRequired && new URLSearchParams(location.search).get('setup') === 'totp') startSetup();
  loadSessions();
}

function leave() {
  state.agent = null;
  clear(ui.qr);
  ui.secret.textContent = '';
  ui.setup.hidden = true;
  ui.continueLink.hidden = true;
  clear(ui.sessionsBody);
}

ui.start.addEventListener('click', startSetup);
ui.confirm.addEventListener('submit', confirmSetup);
const page = startAgentPage({ enter, leave });
