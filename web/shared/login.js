// The login form shared by the console and admin pages (same markup in both index.html files).
import { login } from './session.js';
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
