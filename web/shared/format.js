// Formatting and plain-language error text shared by the frame, console and admin.
import { ApiError } from './http.js';

export function formatTime(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const now = new Date();
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

export function formatDateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString();
}

function minutes(seconds) {
  const m = Math.ceil(seconds / 60);
  return m <= 1 ? 'a minute' : `${m} minutes`;
}

/** A sentence a person can act on, for an ApiError (or any error). */
export function describeError(err) {
  if (!(err instanceof ApiError)) return 'Something went wrong. Please try again.';
  switch (err.code) {
    case 'network':
      return 'The server could not be reached. Check your connection; we will keep trying.';
    case 'rate_limited':
      return err.retryAfterSeconds
        ? `Too many attempts. Please wait ${minutes(err.retryAfterSeconds)} and try again.`
        : 'Too many attempts. Please wait a moment and try again.';
    case 'unavailable':
    case 'jwks_unavailable':
      return 'The service is temporarily unavailable. Please try again shortly.';
    case 'forbidden':
      return 'You do not have permission to do that.';
    case 'not_found':
      return 'That item no longer exists.';
    case 'payload_too_large':
      return 'That is too large to send.';
    case 'unauthorized':
      return 'Your session has ended. Please sign in again.';
    default:
      return err.message || 'Something went wrong. Please try again.';
  }
}

/** A v4 UUID, also on origins where crypto.randomUUID is unavailable (plain http on a LAN IP). */
export function uuid() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') {
    try {
      return window.crypto.randomUUID();
    } catch {
      // insecure context: fall through
    }
  }
  const b = window.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Length in Unicode code points (what "characters" means for the 10,000-character body limit). */
export function charLength(text) {
  let n = 0;
  for (const _ of text) n += 1;
  return n;
}

export const MAX_BODY_CHARS = 10000;
