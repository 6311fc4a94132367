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
};

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
export function api(path, options = {}) {
  return apiFetch(path, { ...options, token: state.token, credentials: 'same-origin' });
}

export async function login(siteId, email, password) {
  const data = await apiFetch('/api/v1/auth/login', {
    method: 'POST',
    body: { siteId, email, password },
    credentials: 'same-origin',
  });
  state.token = data.token || null;
  state.agent = data.agent || null;
  state.operator = false;
  return state.agent;
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
