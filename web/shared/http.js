// JSON over fetch with the contract's error body ({"error": {"code", "message"}}).

export class ApiError extends Error {
  constructor(status, code, message, retryAfterSeconds = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

const FALLBACK_CODES = {
  400: 'invalid_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  429: 'rate_limited',
  503: 'unavailable',
};

/**
 * apiFetch(url, { method, token, body, credentials, signal })
 * Resolves with the parsed JSON body (or null for 204/empty), rejects with ApiError.
 * A network failure rejects with status 0 and code "network".
 */
export async function apiFetch(url, options = {}) {
  const { method = 'GET', token = null, body, credentials = 'same-origin', signal } = options;
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';

  let response;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials,
      cache: 'no-store',
      signal,
    });
  } catch (err) {
    if (err && err.name === 'AbortError') throw err;
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }

  const text = await response.text().catch(() => '');
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (response.ok) return data;

  const err = data && data.error ? data.error : {};
  const retryAfter = Number.parseInt(response.headers.get('Retry-After') || '', 10);
  throw new ApiError(
    response.status,
    err.code || FALLBACK_CODES[response.status] || (response.status >= 500 ? 'unavailable' : 'invalid_request'),
    err.message || `The server answered ${response.status}.`,
    Number.isFinite(retryAfter) ? retryAfter : null,
  );
}

/** True for failures worth retrying unchanged (network, rate limit, server trouble). */
export function isTransient(err) {
  if (!(err instanceof ApiError)) return true;
  return err.status === 0 || err.status === 408 || err.status === 429 || err.status >= 500;
}
