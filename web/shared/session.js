// The agent session for the console and admin pages.
//
// The bearer token lives in memory only. After a reload the HttpOnly session cookie
// authenticates REST calls. The agent socket never gets the session token: before each
// (re)connect the console asks POST /api/v1/auth/ws-ticket for a single-use ticket, valid 60 s.
import { apiFetch, ApiError } from './http.js';

const state = {
  token: null,
  agent: null,
  operator: false,
  // The server's words when it last refused the session (401), e.g. that it idled out.
  endedBecause: '',
};

/** The site requires two-factor authentication and this agent has not set it up yet. */
export function totpSetupRequired() {
  return Boolean(state.totpSetupRequired);
}

/** Note why the session ended when the server said it on a socket (its close reason says more
 * than a later call that only finds the session gone). */
export function noteEnded(reason) {
  if (reason) state.endedBecause = reason;
}

/** Why the session ended, as the server first said it ('' when it did not say). */
export function endedBecause() {
  return state.endedBecause;
}

export function currentAgent() {
  return state.agent;
}

export function currentToken() {
  return state.token;
}

export function isOperator() {
  return state.operator;
}

/** REST call as the signed-in agent: bearer token when we have one, the session cookie always. */
export async function api(path, options = {}) {
  try {
    return await apiFetch(path, { ...options, token: state.token, credentials: 'same-origin' });
  } catch (err) {
    // The first refusal says most (the later ones only find the session gone).
    if (err instanceof ApiError && err.status === 401 && !state.endedBecause) state.endedBecause = err.message || '';
    throw err;
  }
}

/**
 * Sign in; `totp` is the 6-digit code when the account has two-factor authentication on.
 * Resolves with the login answer ({token, agent, totpSetupRequired}); rejects with an ApiError
 * (code `totp_required` when the password was right and a code is needed).
 */
export async function login(siteId, email, password, totp) {
  const body = { siteId, email, password };
  if (totp) body.totp = totp;
  const data = await apiFetch('/api/v1/auth/login', {
    method: 'POST',
    body,
    credentials: 'same-origin',
  });
  state.token = data.token || null;
  state.agent = data.agent || null;
  state.operator = false;
  state.endedBecause = '';
  return data;
}

/**
 * Resume after a reload through the session cookie. Resolves with the agent, or null when
 * there is no valid session. Other failures (network, 5xx) reject.
 */
export async function resume() {
  try {
    const data = await apiFetch('/api/v1/auth/me', { token: state.token, credentials: 'same-origin' });
    if (!data) return null;
    state.agent = data.agent || null;
    state.operator = Boolean(data.operator);
    state.totpSetupRequired = Boolean(data.totpSetupRequired);
    return state.agent;
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      forget();
      return null;
    }
    throw err;
  }
}

/**
 * A single-use ticket for the agent socket's auth frame (by the session cookie, or the bearer
 * token after a login). Rejects with an ApiError 401/403 when the session has ended.
 */
export async function socketTicket() {
  const data = await api('/api/v1/auth/ws-ticket', { method: 'POST' });
  return (data && data.ticket) || null;
}

export async function logout() {
  try {
    await api('/api/v1/auth/logout', { method: 'POST' });
  } finally {
    forget();
  }
}

export function forget() {
  state.token = null;
  state.agent = null;
  state.operator = false;
}
