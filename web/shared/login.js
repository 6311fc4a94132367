// The login form and the sign-in life shared by the console and admin pages (same markup in
// both index.html files).
import { login, resume, currentAgent, currentToken, logout, forget } from './session.js';
import { describeError } from './format.js';
import { ApiError } from './http.js';
import { $, setNotice } from './dom.js';

/** siteId from ?siteId= or 10000 (the first site). */
export function defaultSiteId() {
  const raw = new URLSearchParams(location.search).get('siteId');
  return raw && /^\d+$/.test(raw) ? raw : '10000';
}

function loginErrorText(err) {
  if (err instanceof ApiError && err.status === 401) return 'The email or password is not correct.';
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
    submit.disabled = true;
    try {
      const agent = await login(siteId, email.value.trim(), password.value);
      password.value = '';
      await onLoggedIn(agent);
    } catch (err) {
      setNotice(notice, loginErrorText(err));
      password.select();
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
    loginUi.show('Your session has ended. Please sign in again.', 'warn');
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
