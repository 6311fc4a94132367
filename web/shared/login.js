// The login form and the sign-in life shared by the console and admin pages (same markup in
// both index.html files).
import { login, resume, currentAgent, currentToken, logout, forget, endedBecause, totpSetupRequired } from './session.js';
import { describeError } from './format.js';
import { ApiError } from './http.js';
import { $, h, setNotice } from './dom.js';

/** The agent's own page: two-factor set-up and sessions. */
export const ACCOUNT_PAGE = '/console/account/';

/** siteId from ?siteId= or 10000 (the first site). */
export function defaultSiteId() {
  const raw = new URLSearchParams(location.search).get('siteId');
  return raw && /^\d+$/.test(raw) ? raw : '10000';
}

function loginErrorText(err, askedForCode) {
  if (err instanceof ApiError && err.code === 'totp_required') {
    return 'Enter the 6-digit code from your authenticator app.';
  }
  if (err instanceof ApiError && err.status === 401 && /disabled/i.test(err.message || '')) {
    return 'This account is disabled. Ask an admin of your site to enable it.';
  }
  if (err instanceof ApiError && err.status === 401 && askedForCode) {
    return 'The code is not correct, or was used already. Wait for the next code and try again.';
  }
  if (err instanceof ApiError && err.status === 401) return 'The email or password is not correct.';
  if (err instanceof ApiError && err.status === 429) {
    return 'Too many failed sign-ins for this account. Try again later, or ask an admin of your site to unlock it.';
  }
  if (err instanceof ApiError && err.status === 404) return 'There is no site with that number.';
  if (err instanceof ApiError && err.status === 400) return 'Please check the site number, email and password.';
  return describeError(err);
}

/**
 * Wire the #login-form. onLoggedIn(agent) runs after a successful login.
 * Returns { show(message?), hide() }.
 */
export function setupLogin({ onLoggedIn }) {
  const section = $('#login');
  const form = $('#login-form');
  const site = $('#login-site');
  const email = $('#login-email');
  const password = $('#login-password');
  const submit = $('#login-submit');
  const notice = $('#login-error');
  site.value = defaultSiteId();
  // The code field appears when the server asks for it (the account has two-factor on).
  const codeInput = h('input', {
    type: 'text',
    id: 'login-totp',
    inputmode: 'numeric',
    autocomplete: 'one-time-code',
    maxlength: '6',
    pattern: '[0-9]{6}',
    'data-testid': 'login-totp',
  });
  const codeField = h(
    'div',
    { class: 'field', id: 'login-totp-field', hidden: true },
    h('label', { for: 'login-totp', text: 'Authentication code' }),
    codeInput,
  );
  submit.before(codeField);
  const askForCode = () => {
    codeField.hidden = false;
    codeInput.value = '';
    codeInput.focus();
  };

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    setNotice(notice, '');
    const siteId = Number.parseInt(site.value.trim(), 10);
    if (!Number.isInteger(siteId) || siteId <= 0) {
      setNotice(notice, 'The site number is a whole number, such as 10000.');
      site.focus();
      return;
    }
    if (!email.value.trim() || !password.value) {
      setNotice(notice, 'Please enter your email and password.');
      (email.value.trim() ? password : email).focus();
      return;
    }
    const code = codeField.hidden ? '' : codeInput.value.replace(/\s/g, '');
    if (!codeField.hidden && !/^\d{6}$/.test(code)) {
      setNotice(notice, 'The code is the 6 digits your authenticator app shows.');
      codeInput.focus();
      return;
    }
    submit.disabled = true;
    try {
      const answer = await login(siteId, email.value.trim(), password.value, code || undefined);
      password.value = '';
      codeInput.value = '';
      codeField.hidden = true;
      if (answer.totpSetupRequired) {
        // The site requires two-factor authentication: this session may only set it up.
        location.assign(`${ACCOUNT_PAGE}?setup=totp`);
        return;
      }
      await onLoggedIn(answer.agent);
    } catch (err) {
      if (err instanceof ApiError && err.code === 'totp_required') {
        setNotice(notice, loginErrorText(err), 'info');
        askForCode();
        return;
      }
      setNotice(notice, loginErrorText(err, !codeField.hidden));
      if (codeField.hidden) password.select();
      else askForCode();
    } finally {
      submit.disabled = false;
    }
  });

  return {
    show(message = '', kind = 'info') {
      section.hidden = false;
      setNotice(notice, message, kind);
      (email.value ? password : email).focus();
    },
    hide() {
      section.hidden = true;
      setNotice(notice, '');
    },
  };
}

/**
 * The sign-in life of an agent page (console, admin), on the markup both have (#boot, #app,
 * #agent-name, #app-error, #logout and the login form): resume the session cookie or ask to sign
 * in, then enter(agent) fills the page; leave() empties it again on signing out and when the
 * session ends. Returns { sessionEnded } for the page's 401s.
 */
export function startAgentPage({ enter, leave }) {
  const boot = $('#boot');
  const app = $('#app');
  const agentName = $('#agent-name');
  const error = $('#app-error');
  const logoutButton = $('#logout');
  let active = false;
  const loginUi = setupLogin({ onLoggedIn: enterApp });

  function enterApp(agent) {
    active = true;
    boot.hidden = true;
    loginUi.hide();
    app.hidden = false;
    agentName.textContent = agent ? `${agent.name || agent.email} · ${agent.role}` : 'Operator';
    setNotice(error, '');
    enter(agent);
  }

  function leaveApp() {
    active = false;
    leave();
    app.hidden = true;
  }

  function sessionEnded() {
    if (!active) return;
    leaveApp();
    forget();
    loginUi.show(endedMessage(), 'warn');
  }

  async function signOut() {
    logoutButton.disabled = true;
    try {
      await logout();
    } catch {
      // the server may already consider us logged out; forget locally either way
    } finally {
      logoutButton.disabled = false;
      leaveApp();
      loginUi.show('You have signed out.', 'ok');
    }
  }

  async function resumeOrAsk() {
    try {
      const agent = await resume();
      if (agent && totpSetupRequired() && location.pathname !== ACCOUNT_PAGE) {
        location.assign(`${ACCOUNT_PAGE}?setup=totp`);
        return;
      }
      if (agent || currentToken()) {
        enterApp(agent || currentAgent());
        return;
      }
    } catch (err) {
      boot.hidden = true;
      loginUi.show(describeError(err), 'error');
      return;
    }
    boot.hidden = true;
    loginUi.show();
  }

  logoutButton.addEventListener('click', signOut);
  resumeOrAsk();
  return { sessionEnded };
}

/** Why the page went back to sign-in, in plain words. */
export function endedMessage() {
  const why = endedBecause();
  if (/without activity|idle/i.test(why)) {
    return 'You were signed out because this session was idle for too long. Please sign in again.';
  }
  if (/two-factor/i.test(why)) return why;
  return 'Your session has ended (you signed out elsewhere, or it was ended from another device or by an admin). Please sign in again.';
}
