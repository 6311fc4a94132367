// Reliable sending: one clientMessageId per message, retried unchanged until the server
// answers 200/201, so a retry can never store a duplicate (contract §7 idempotency).
import { ApiError, isTransient } from './http.js';
import { describeError } from './format.js';

const MAX_BACKOFF_MS = 30000;

export const DeliveryState = Object.freeze({
  SENDING: 'sending',
  RETRYING: 'retrying', // transient failure; retrying automatically
  WAITING_AUTH: 'waiting-auth', // 401; resumes when retryNow() is called with a new token
  FAILED: 'failed', // the server refused it; the person may retry (same clientMessageId)
  SENT: 'sent',
});

export class Delivery {
  /**
   * @param {object} opts
   * @param {string} opts.clientMessageId
   * @param {() => Promise<object>} opts.attempt   performs one POST; resolves with the message
   * @param {(state: string, detail: {message?: object, error?: string}) => void} opts.onState
   */
  constructor({ clientMessageId, attempt, onState }) {
    this.clientMessageId = clientMessageId;
    this.attemptFn = attempt;
    this.onState = onState;
    this.tries = 0;
    this.timer = null;
    this.inFlight = false;
    this.done = false;
    this.cancelled = false;
    this.state = null;
  }

  start() {
    this.run();
    return this;
  }

  /** Retry immediately (a "Retry" click, a fresh token, the browser coming back online). */
  retryNow() {
    if (this.done || this.cancelled || this.inFlight) return;
    clearTimeout(this.timer);
    this.run();
  }

  cancel() {
    this.cancelled = true;
    clearTimeout(this.timer);
  }

  async run() {
    this.inFlight = true;
    this.tries += 1;
    this.setState(DeliveryState.SENDING, {});
    try {
      const message = await this.attemptFn();
      if (this.cancelled) return;
      this.done = true;
      this.setState(DeliveryState.SENT, { message });
    } catch (err) {
      if (this.cancelled) return;
      this.handleFailure(err);
    } finally {
      this.inFlight = false;
    }
  }

  handleFailure(err) {
    if (err instanceof ApiError && err.status === 401) {
      this.setState(DeliveryState.WAITING_AUTH, { error: 'Waiting for your session to be renewed…', code: err.code });
      return;
    }
    if (isTransient(err)) {
      const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** (this.tries - 1));
      const delay = err instanceof ApiError && err.retryAfterSeconds ? err.retryAfterSeconds * 1000 : base;
      this.setState(DeliveryState.RETRYING, { error: describeError(err), code: err.code });
      this.timer = setTimeout(() => this.run(), delay);
      return;
    }
    this.setState(DeliveryState.FAILED, { error: describeError(err), code: err && err.code });
  }

  setState(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }
}
