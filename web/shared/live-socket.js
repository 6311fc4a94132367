// A reconnecting WebSocket for Confidant's live events (contract §7, web-spec "WebSocket protocol").
//
// - The first frame is always {"type":"auth","token":…}; the token never goes in the URL.
// - On every "ready" the owner is told (onReady) so it can send "resume" with its last seen seqs.
// - Close 4401 means the token failed or expired: the socket stops and calls onAuthFailed; it
//   reconnects as soon as setToken() hands it a new token.
// - Any other close reconnects with exponential backoff (1 s … 30 s, with jitter).
// - setToken() on a live socket sends a new auth frame (token refresh without reconnect).
// - With fetchToken (the agent console: single-use tickets), every (re)connect first asks it
//   for a fresh token; a fetch that fails with 401/403 counts as a 4401.

const PING_EVERY_MS = 25000;
const PONG_TIMEOUT_MS = 10000;
const MAX_BACKOFF_MS = 30000;

export const SocketState = Object.freeze({
  IDLE: 'idle',
  CONNECTING: 'connecting',
  CONNECTED: 'connected',
  RECONNECTING: 'reconnecting',
  UNAUTHORIZED: 'unauthorized',
  CLOSED: 'closed',
});

export class LiveSocket {
  /**
   * @param {object} opts
   * @param {string} opts.url            ws:// or wss:// URL
   * @param {(msg: object) => void} opts.onEvent      every server frame except ready/pong
   * @param {(msg: object) => void} [opts.onReady]    after each successful (re)authentication
   * @param {(state: string) => void} [opts.onState]
   * @param {(reason: string) => void} [opts.onAuthFailed]  after a 4401 close (its reason)
   * @param {() => Promise<string|null>} [opts.fetchToken]  a fresh token for each connect
   */
  constructor({ url, onEvent, onReady = () => {}, onState = () => {}, onAuthFailed = () => {}, fetchToken = null }) {
    this.url = url;
    this.fetchToken = fetchToken;
    this.fetching = 0;
    this.onEvent = onEvent;
    this.onReady = onReady;
    this.onStateChange = onState;
    this.onAuthFailed = onAuthFailed;
    this.token = null;
    this.ws = null;
    this.state = SocketState.IDLE;
    this.attempt = 0;
    this.everConnected = false;
    this.reconnectTimer = null;
    this.pingTimer = null;
    this.pongTimer = null;
    this.stopped = false;
    this.handleOnline = () => {
      if (this.state === SocketState.RECONNECTING) this.connectNow();
    };
    window.addEventListener('online', this.handleOnline);
  }

  get isOpen() {
    return this.state === SocketState.CONNECTED && this.ws && this.ws.readyState === WebSocket.OPEN;
  }

  /** Give the socket a (new) token. Starts it, re-authenticates it, or revives it after 4401. */
  setToken(token) {
    if (this.stopped || !token) return;
    const previous = this.token;
    this.token = token;
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      if (previous !== token) this.sendRaw({ type: 'auth', token });
      return;
    }
    if (this.state === SocketState.IDLE || this.state === SocketState.UNAUTHORIZED) {
      this.connectNow();
    }
  }

  /** Send a frame if the socket is authenticated; returns whether it was sent. */
  send(message) {
    if (!this.isOpen) return false;
    return this.sendRaw(message);
  }

  sendRaw(message) {
    try {
      this.ws.send(JSON.stringify(message));
      return true;
    } catch {
      return false;
    }
  }

  connectNow() {
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    if (this.stopped) return;
    if (this.fetchToken) {
      this.connectWithFreshToken();
      return;
    }
    if (!this.token) return;
    this.dropSocket();
    this.setState(this.everConnected ? SocketState.RECONNECTING : SocketState.CONNECTING);
    this.open();
  }

  /** Start: with fetchToken the socket needs no token up front. */
  start() {
    if (this.state === SocketState.IDLE || this.state === SocketState.UNAUTHORIZED) this.connectNow();
  }

  async connectWithFreshToken() {
    const attempt = ++this.fetching;
    this.dropSocket();
    this.setState(this.everConnected ? SocketState.RECONNECTING : SocketState.CONNECTING);
    let token = null;
    try {
      token = await this.fetchToken();
    } catch (err) {
      if (attempt !== this.fetching || this.stopped) return;
      if (err && (err.status === 401 || err.status === 403)) {
        this.setState(SocketState.UNAUTHORIZED);
        this.onAuthFailed();
      } else {
        this.scheduleReconnect();
      }
      return;
    }
    if (attempt !== this.fetching || this.stopped) return;
    if (!token) {
      this.scheduleReconnect();
      return;
    }
    this.token = token;
    this.open();
  }

  open() {
    let ws;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      if (this.ws !== ws) return;
      this.sendRaw({ type: 'auth', token: this.token });
    });
    ws.addEventListener('message', (event) => {
      if (this.ws !== ws) return;
      this.handleFrame(event.data);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.stopPing();
      if (this.stopped) return;
      if (event.code === 4401) {
        this.setState(SocketState.UNAUTHORIZED);
        this.onAuthFailed(event.reason || '');
      } else {
        this.scheduleReconnect();
      }
    });
    // 'error' is always followed by 'close'; nothing to do here.
  }

  handleFrame(data) {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch {
      return;
    }
    if (!msg || typeof msg.type !== 'string') return;
    this.armPongTimeout(false);
    if (msg.type === 'pong') return;
    if (msg.type === 'ready') {
      const firstReadyOfThisSocket = this.state !== SocketState.CONNECTED;
      this.attempt = 0;
      this.everConnected = true;
      this.setState(SocketState.CONNECTED);
      this.startPing();
      // A "ready" after a token refresh on a live socket needs no resume, but resuming is harmless.
      this.onReady(msg, firstReadyOfThisSocket);
      return;
    }
    this.onEvent(msg);
  }

  scheduleReconnect() {
    if (this.stopped) return;
    this.setState(this.everConnected ? SocketState.RECONNECTING : SocketState.CONNECTING);
    const base = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** this.attempt);
    const delay = base / 2 + Math.random() * (base / 2);
    this.attempt += 1;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => this.connectNow(), delay);
  }

  startPing() {
    this.stopPing();
    this.pingTimer = setInterval(() => {
      if (this.sendRaw({ type: 'ping' })) this.armPongTimeout(true);
    }, PING_EVERY_MS);
  }

  armPongTimeout(arm) {
    clearTimeout(this.pongTimer);
    this.pongTimer = null;
    if (!arm) return;
    this.pongTimer = setTimeout(() => {
      // No answer: the connection is dead even if the browser has not noticed yet.
      const ws = this.ws;
      this.ws = null;
      if (ws) ws.close();
      this.stopPing();
      this.scheduleReconnect();
    }, PONG_TIMEOUT_MS);
  }

  stopPing() {
    clearInterval(this.pingTimer);
    clearTimeout(this.pongTimer);
    this.pingTimer = null;
    this.pongTimer = null;
  }

  dropSocket() {
    const ws = this.ws;
    this.ws = null;
    this.stopPing();
    if (ws && ws.readyState <= WebSocket.OPEN) {
      try {
        ws.close(1000);
      } catch {
        // ignore
      }
    }
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.onStateChange(state);
  }

  /** Stop for good: closes the socket, cancels timers, forgets the token. */
  close() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.dropSocket();
    this.token = null;
    window.removeEventListener('online', this.handleOnline);
    this.setState(SocketState.CLOSED);
  }
}

/** ws(s)://<this page's host><path> */
export function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}
