// The messenger inside the iframe (served from the Confidant server's origin).
//
// Token: received from the parent page by postMessage only, kept in memory only.
// History: REST; live: WebSocket (auth frame first, resume on every (re)connect).
// Sending: one clientMessageId per message, retried unchanged until 200/201.
import { h, $, setNotice } from '../../shared/dom.js';
import { apiFetch, ApiError } from '../../shared/http.js';
import { LiveSocket, SocketState, socketUrl } from '../../shared/live-socket.js';
import { Delivery, DeliveryState } from '../../shared/outbox.js';
import { uuid, charLength, MAX_BODY_CHARS } from '../../shared/format.js';
import { Thread, ConnectionLabel, isMessage, readMessages, wireComposer } from '../../shared/thread.js';
import { AttachmentTray, attachmentList, fetchBlob, uploadFile, wireDrop } from '../../shared/attachments.js';

const NEED_TOKEN_GRACE_MS = 8000;

// ---------------------------------------------------------------------------------------------
// Config and DOM

const config = readConfig();
const ui = {
  name: $('#frame-name'),
  state: $('#connection-state'),
  error: $('#frame-error'),
  body: $('.frame-body'),
  empty: $('#frame-empty'),
  loading: $('#frame-loading'),
  list: $('#message-list'),
  typing: $('#typing'),
  form: $('#composer-form'),
  composer: $('#composer'),
  send: $('#send'),
  attach: $('#attach'),
  attachInput: $('#attach-input'),
  tray: $('#attachment-tray'),
  count: $('#composer-count'),
  close: $('#frame-close'),
};

function readConfig() {
  try {
    const parsed = JSON.parse($('#confidant-config').textContent);
    if (parsed && typeof parsed === 'object') return parsed;
  } catch {
    // fall through
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// State (everything here is dropped by shutdown)

const state = {
  token: null,
  tokenSerial: 0,
  parentOrigin: null,
  visibleInParent: false,
  dead: false,
  historyLoaded: false,
  historyLoading: false,
  readyPosted: false,
  lastUnreadPosted: -1,
  needTokenTimer: null,
  expiryTimer: null,
  socket: null,
  currentConversationId: null,
  nextOrder: 1,
};
/** conversationId -> { id, status, createdAt, order, others:Set, agentReadSeq, contactReadSeq, readSent } */
const conversations = new Map();

/** The messages of every conversation, oldest conversation first. */
const thread = new Thread({
  list: ui.list,
  scroller: ui.body,
  typing: ui.typing,
  me: 'contact',
  itemClass: 'message',
  seenText: 'Seen',
  readByOthers: (id) => conversations.get(id)?.agentReadSeq ?? 0,
  label: (m) => senderLabel(m.sender),
  who: (m) => h('span', { class: 'visually-hidden', text: `${m.sender.type === 'contact' ? 'You' : senderLabel(m.sender)}, ` }),
  orderOf: (id) => conversations.get(id)?.order ?? 0,
  onGap: (id) => resume(id),
  attachments: (m) =>
    attachmentList(m.attachments, {
      urlOf: (id) => `/api/v1/messenger/attachments/${encodeURIComponent(id)}`,
      get: (url) => fetchBlob(url, { token: state.token }),
    }),
});

/** Files picked for the next message (CONTRACT §11), when the messenger takes attachments. */
const files = config && config.attachments && config.attachments.enabled
  ? new AttachmentTray(ui.tray, {
      maxBytes: config.attachments.maxBytes,
      upload: (file, onProgress) =>
        uploadFile('/api/v1/messenger/attachments', { token: state.token, file, onProgress }),
      onChange: () => updateCount(),
    })
  : null;

const connection = new ConnectionLabel(ui.state, { connected: 'Connected', closed: 'Disconnected' });

// ---------------------------------------------------------------------------------------------
// Parent page bridge

const embedded = window.parent !== window;

function parseOriginRule(entry) {
  const m = /^(https?):\/\/(\[[^\]]+\]|[^/:?#]+)(?::(\d+))?/i.exec(String(entry).trim());
  if (!m) return null;
  const scheme = m[1].toLowerCase();
  return { scheme, host: m[2].toLowerCase(), port: m[3] || (scheme === 'https' ? '443' : '80') };
}

/** Is `origin` the server's or one of the allowed origins (which may use a leading "*.")? */
function originAllowed(origin) {
  if (!config || typeof origin !== 'string' || origin === 'null') return false;
  if (origin === config.serverOrigin) return true;
  const page = parseOriginRule(origin);
  if (!page) return false;
  return (config.allowedOrigins || []).some((entry) => {
    const rule = parseOriginRule(entry);
    if (!rule || rule.scheme !== page.scheme || rule.port !== page.port) return false;
    if (rule.host.startsWith('*.')) {
      const suffix = rule.host.slice(1);
      return page.host.length > suffix.length && page.host.endsWith(suffix);
    }
    return rule.host === page.host;
  });
}

/** Post to the parent; only once its origin is known (messages may carry conversation content). */
function tell(message) {
  if (!embedded || !state.parentOrigin) return;
  window.parent.postMessage(message, state.parentOrigin);
}

function sayHello() {
  // No secret in here, so '*' is acceptable: we do not know the parent's origin yet.
  if (embedded) window.parent.postMessage({ type: 'confidant:hello' }, '*');
}

function onParentMessage(event) {
  if (!embedded || event.source !== window.parent || !originAllowed(event.origin)) return;
  const data = event.data;
  if (!data || typeof data.type !== 'string' || state.dead) return;
  switch (data.type) {
    case 'confidant:token':
      if (typeof data.token === 'string' && data.token) {
        state.parentOrigin = event.origin;
        receiveToken(data.token);
      }
      break;
    case 'confidant:visibility':
      state.parentOrigin = state.parentOrigin || event.origin;
      state.visibleInParent = Boolean(data.visible);
      if (state.visibleInParent) ui.composer.focus({ preventScroll: true });
      markReadIfVisible();
      break;
    case 'confidant:error':
      showError(String(data.code || ''), String(data.message || ''), false);
      break;
    case 'confidant:shutdown':
      shutdown();
      break;
    default:
      break;
  }
}

function requestToken() {
  tell({ type: 'confidant:need-token' });
  clearTimeout(state.needTokenTimer);
  const serial = state.tokenSerial;
  state.needTokenTimer = setTimeout(() => {
    if (state.tokenSerial === serial && !state.dead) {
      showError('token_expired', 'no fresh token arrived', true);
    }
  }, NEED_TOKEN_GRACE_MS);
}

// ---------------------------------------------------------------------------------------------
// Errors in plain words

function plainError(code, message) {
  switch (code) {
    case 'origin_not_allowed':
      return 'This page is not allowed to show the messenger.';
    case 'token_expired':
    case 'unauthorized':
    case 'expiry_missing':
    case 'signature_invalid':
    case 'token_malformed':
    case 'algorithm_not_allowed':
    case 'key_not_found':
    case 'token_not_yet_valid':
    case 'token_lifetime_too_long':
    case 'issuer_mismatch':
    case 'audience_mismatch':
    case 'identity_missing':
      return 'Your session expired — please reload the page or log in again.';
    case 'messenger_not_found':
    case 'not_found':
      return 'This messenger is not available any more.';
    case 'rate_limited':
      return 'Too many requests — please wait a moment and try again.';
    case 'unavailable':
    case 'jwks_unavailable':
    case 'network':
      return 'The messenger is temporarily unavailable. We will keep trying.';
    case 'payload_too_large':
      return 'That message is too long to send.';
    default:
      return message ? `Something went wrong: ${message}` : 'Something went wrong. Please reload the page.';
  }
}

/** Show a banner; `report` also tells the page (Confidant.on('error')). */
function showError(code, message, report = true) {
  setNotice(ui.error, plainError(code, message));
  ui.error.dataset.code = code;
  if (report) tell({ type: 'confidant:error', code, message: message || plainError(code, '') });
}

function clearError() {
  setNotice(ui.error, '');
  delete ui.error.dataset.code;
}

function handleApiError(err) {
  if (!(err instanceof ApiError)) {
    showError('unavailable', String(err && err.message ? err.message : err));
    return;
  }
  if (err.status === 401) {
    requestToken(); // the banner follows only if no fresh token arrives
    return;
  }
  showError(err.code, err.message);
}

// ---------------------------------------------------------------------------------------------
// REST

function api(path, options = {}) {
  return apiFetch(path, { ...options, token: state.token, credentials: 'omit' });
}

async function loadHistory() {
  if (state.historyLoading || state.historyLoaded) return;
  state.historyLoading = true;
  const serial = state.tokenSerial;
  try {
    const data = await api('/api/v1/messenger/conversations');
    if (state.dead) return;
    const list = (data && data.conversations) || [];
    const newest = list[0];
    if (newest) {
      upsertConversation(newest);
      await loadMessages(newest.conversationId, 0);
    }
    if (state.dead) return;
    state.historyLoaded = true;
    ui.loading.hidden = true;
    updateEmpty();
    thread.scrollToBottom(true);
    markReadIfVisible();
    postUnread();
    if (!state.readyPosted) {
      state.readyPosted = true;
      tell({ type: 'confidant:ready' });
    }
  } catch (err) {
    if (state.dead) return;
    ui.loading.hidden = true;
    if (serial === state.tokenSerial || !(err instanceof ApiError) || err.status !== 401) handleApiError(err);
  } finally {
    state.historyLoading = false;
  }
}

function loadMessages(conversationId, afterSeq) {
  return readMessages(
    (after, limit) => api(`/api/v1/messenger/conversations/${encodeURIComponent(conversationId)}/messages?after=${after}&limit=${limit}`),
    afterSeq,
    (m) => acceptMessage(m, false),
    () => state.dead,
  );
}

/** After a reconnect: pick up conversations opened meanwhile (e.g. from another tab). */
async function refreshConversationList() {
  try {
    const data = await api('/api/v1/messenger/conversations');
    if (state.dead) return;
    for (const c of (data && data.conversations) || []) {
      if (conversations.has(c.conversationId)) {
        upsertConversation(c);
      } else if (state.currentConversationId && c.createdAt && isNewerThanCurrent(c)) {
        upsertConversation(c);
        resume(c.conversationId);
      }
    }
  } catch {
    // best effort; the socket keeps working
  }
}

function isNewerThanCurrent(c) {
  const cur = conversations.get(state.currentConversationId);
  return !cur || !cur.createdAt || Date.parse(c.createdAt) > Date.parse(cur.createdAt);
}

// ---------------------------------------------------------------------------------------------
// Conversations and messages

function upsertConversation(c) {
  let conv = conversations.get(c.conversationId);
  if (!conv) {
    conv = {
      id: c.conversationId,
      status: 'open',
      createdAt: c.createdAt || null,
      order: state.nextOrder++,
      others: new Set(),
      agentReadSeq: 0,
      contactReadSeq: 0,
      readSent: 0,
    };
    conversations.set(conv.id, conv);
    state.currentConversationId = conv.id; // conversations only ever appear newest last
  }
  if (c.status) conv.status = c.status;
  if (c.createdAt) conv.createdAt = c.createdAt;
  if (Number.isInteger(c.agentReadSeq)) conv.agentReadSeq = Math.max(conv.agentReadSeq, c.agentReadSeq);
  if (Number.isInteger(c.contactReadSeq)) {
    conv.contactReadSeq = Math.max(conv.contactReadSeq, c.contactReadSeq);
    conv.readSent = Math.max(conv.readSent, c.contactReadSeq);
  }
  return conv;
}

function senderLabel(sender) {
  if (!sender) return '';
  if (sender.type === 'agent') return sender.name || 'Support';
  return '';
}

/**
 * Show a message from history, the socket or a send answer. Idempotent by messageId.
 * Returns true when it was new.
 */
function acceptMessage(message, live) {
  if (!isMessage(message)) return false;
  const conv = conversations.get(message.conversationId) || upsertConversation({ conversationId: message.conversationId, createdAt: message.createdAt });
  const shown = thread.show(message, { live });
  if (!shown) return false;
  if (!shown.fromMe) conv.others.add(message.seq);
  updateEmpty();
  if (live) {
    // The page hears about new messages, not about the one this frame itself just sent
    // (the socket may echo it before the POST answers; that must not depend on the race).
    if (!shown.wasPending) tell({ type: 'confidant:message', message });
    markReadIfVisible();
    postUnread();
  }
  return true;
}

function updateEmpty() {
  ui.empty.hidden = !state.historyLoaded || ui.list.children.length > 0;
}

// ---------------------------------------------------------------------------------------------
// Unread and read markers

function unreadCount() {
  let n = 0;
  for (const conv of conversations.values()) {
    for (const seq of conv.others) if (seq > conv.contactReadSeq) n += 1;
  }
  return n;
}

function postUnread() {
  const n = unreadCount();
  if (n === state.lastUnreadPosted) return;
  state.lastUnreadPosted = n;
  tell({ type: 'confidant:unread', count: n });
}

function isVisible() {
  return document.visibilityState === 'visible' && (state.visibleInParent || !embedded);
}

function markReadIfVisible() {
  if (!isVisible() || !state.token || state.dead) return;
  for (const conv of conversations.values()) {
    const seq = thread.lastSeq(conv.id);
    if (seq <= conv.readSent) continue;
    conv.readSent = seq;
    conv.contactReadSeq = Math.max(conv.contactReadSeq, seq);
    const sent = state.socket && state.socket.send({ type: 'read', conversationId: conv.id, seq });
    if (!sent) {
      api(`/api/v1/messenger/conversations/${encodeURIComponent(conv.id)}/read`, { method: 'POST', body: { seq } }).catch(() => {
        conv.readSent = Math.min(conv.readSent, seq - 1); // try again next time
      });
    }
  }
  postUnread();
}

// ---------------------------------------------------------------------------------------------
// Live socket

function showConnection(socketState) {
  if (socketState !== SocketState.CONNECTED && !navigator.onLine && state.token) {
    connection.set('offline', 'Offline — reconnecting when you are back online');
  } else {
    connection.show(socketState);
  }
}

function resume(conversationId) {
  const conv = conversations.get(conversationId);
  if (!conv || !state.socket) return;
  state.socket.send({ type: 'resume', conversationId, afterSeq: thread.lastSeq(conversationId) });
}

function onSocketReady(msg, reconnected) {
  if (ui.error.dataset.code && ['token_expired', 'unauthorized', 'unavailable', 'network'].includes(ui.error.dataset.code)) {
    clearError();
  }
  clearTimeout(state.needTokenTimer);
  scheduleExpiryWarning(msg.expiresAt);
  if (!reconnected) return; // a token refresh on the live socket: nothing was missed
  for (const id of conversations.keys()) resume(id);
  if (state.historyLoaded) refreshConversationList();
  else loadHistory();
}

function scheduleExpiryWarning(expiresAt) {
  clearTimeout(state.expiryTimer);
  if (!Number.isFinite(expiresAt)) return;
  const serial = state.tokenSerial;
  const delay = Math.max(0, (expiresAt - 30) * 1000 - Date.now());
  state.expiryTimer = setTimeout(() => {
    if (state.tokenSerial === serial && !state.dead) tell({ type: 'confidant:need-token' });
  }, Math.min(delay, 2147483000));
}

function onSocketEvent(msg) {
  switch (msg.type) {
    case 'message':
      acceptMessage(msg.message, true);
      break;
    case 'typing':
      if (msg.sender && msg.sender.type !== 'contact') thread.showTyping(msg.sender.name || 'Support');
      break;
    case 'read':
      onReadEvent(msg);
      break;
    case 'conversation':
      if (msg.conversation && msg.conversation.conversationId) {
        const known = conversations.has(msg.conversation.conversationId);
        upsertConversation(msg.conversation);
        if (!known) resume(msg.conversation.conversationId);
      }
      break;
    case 'resync':
      if (msg.conversationId) resume(msg.conversationId);
      else for (const id of conversations.keys()) resume(id);
      break;
    case 'error':
      // A frame we sent was refused; the socket stays open. Nothing for the customer to do.
      break;
    default:
      break;
  }
}

function onReadEvent(msg) {
  const conv = conversations.get(msg.conversationId);
  if (!conv || !msg.reader || !Number.isInteger(msg.seq)) return;
  if (msg.reader.type === 'agent') {
    conv.agentReadSeq = Math.max(conv.agentReadSeq, msg.seq);
    thread.updateSeen();
  } else if (msg.reader.type === 'contact') {
    // read in another tab or device
    conv.contactReadSeq = Math.max(conv.contactReadSeq, msg.seq);
    conv.readSent = Math.max(conv.readSent, msg.seq);
    postUnread();
  }
}

function startSocket() {
  state.socket = new LiveSocket({
    url: socketUrl('/api/v1/messenger/ws'),
    onEvent: onSocketEvent,
    onReady: onSocketReady,
    onState: showConnection,
    onAuthFailed: requestToken,
  });
  state.socket.setToken(state.token);
}

// ---------------------------------------------------------------------------------------------
// Typing

function maybeSendTyping() {
  const conv = conversations.get(state.currentConversationId);
  if (conv && conv.status === 'open') thread.sendTyping(state.socket, conv.id);
}

// ---------------------------------------------------------------------------------------------
// Sending

function sendMessage(body, attached = []) {
  const clientMessageId = uuid();
  const send = { clientMessageId, body };
  if (attached.length) send.attachmentIds = attached.map((a) => a.attachmentId);
  const delivery = new Delivery({
    clientMessageId,
    attempt: () => api('/api/v1/messenger/messages', { method: 'POST', body: send }),
    onState: (st, detail) => onDeliveryState(clientMessageId, st, detail),
  });
  thread.addPending(clientMessageId, body, delivery, attached);
  updateEmpty();
  delivery.start();
}

function onDeliveryState(clientMessageId, st, detail) {
  if (state.dead) return;
  switch (st) {
    case DeliveryState.SENDING:
      thread.pendingState(clientMessageId, st, 'Sending…');
      break;
    case DeliveryState.RETRYING:
      thread.pendingState(clientMessageId, st, 'Not sent yet — retrying…', { retry: 'Retry now' });
      break;
    case DeliveryState.WAITING_AUTH:
      thread.pendingState(clientMessageId, st, 'Waiting for your session to be renewed…');
      requestToken();
      break;
    case DeliveryState.FAILED:
      thread.pendingState(clientMessageId, st, `Not sent: ${detail.error || 'the server refused it'}`, { retry: 'Retry', failed: true });
      if (detail.code === 'origin_not_allowed') showError(detail.code, detail.error);
      break;
    case DeliveryState.SENT:
      // (if the socket showed it already, in an item of its own, the thread drops the pending one)
      if (detail.message) {
        acceptMessage({ ...detail.message, clientMessageId, sender: detail.message.sender || { type: 'contact' } }, false);
        markReadIfVisible();
      }
      break;
    default:
      break;
  }
}

function retryWaitingDeliveries() {
  for (const delivery of thread.deliveries()) {
    if (delivery.state === DeliveryState.WAITING_AUTH || delivery.state === DeliveryState.RETRYING) delivery.retryNow();
  }
}

function updateCount() {
  const n = charLength(ui.composer.value);
  const over = n > MAX_BODY_CHARS;
  const show = n > MAX_BODY_CHARS - 500;
  ui.count.hidden = !show;
  ui.count.classList.toggle('over', over);
  ui.count.textContent = over
    ? `Too long: ${n.toLocaleString()} of ${MAX_BODY_CHARS.toLocaleString()} characters`
    : `${n.toLocaleString()} of ${MAX_BODY_CHARS.toLocaleString()} characters`;
  const ready = files ? files.ids().length > 0 && !files.busy() : false;
  ui.send.disabled = !state.token || over || (ui.composer.value.trim() === '' && !ready) || Boolean(files && files.busy());
  return !over;
}

function autoGrow() {
  ui.composer.style.height = 'auto';
  ui.composer.style.height = `${Math.min(ui.composer.scrollHeight + 2, 128)}px`;
}

function submitComposer() {
  const body = ui.composer.value.trim();
  const attached = files && !files.busy() ? files.items.filter((i) => i.state === 'done').map((i) => i.result) : [];
  if ((!body && !attached.length) || !state.token || state.dead || (files && files.busy())) return;
  if (!updateCount()) {
    ui.composer.focus();
    return;
  }
  ui.composer.value = '';
  if (files) files.takeSent();
  autoGrow();
  updateCount();
  sendMessage(body, attached);
  ui.composer.focus();
}

// ---------------------------------------------------------------------------------------------
// Lifecycle

function receiveToken(token) {
  if (state.dead) return;
  const first = !state.token;
  const changed = token !== state.token;
  state.token = token;
  if (!changed) return;
  state.tokenSerial += 1;
  clearTimeout(state.needTokenTimer);
  if (ui.error.dataset.code && ui.error.dataset.code !== 'origin_not_allowed') clearError();
  ui.composer.disabled = false;
  updateCount();
  if (first) {
    loadHistory().then(() => {
      if (!state.dead && !state.socket) startSocket();
    });
  } else {
    if (state.socket) state.socket.setToken(token);
    else if (state.historyLoaded) startSocket();
    if (!state.historyLoaded) loadHistory().then(() => !state.dead && !state.socket && startSocket());
    retryWaitingDeliveries();
  }
}

function shutdown() {
  state.dead = true;
  if (state.socket) state.socket.close();
  state.socket = null;
  thread.reset();
  conversations.clear();
  clearTimeout(state.needTokenTimer);
  clearTimeout(state.expiryTimer);
  state.token = null;
  state.parentOrigin = null;
  clearError();
  ui.composer.value = '';
  ui.composer.disabled = true;
  ui.send.disabled = true;
  ui.loading.hidden = true;
  ui.empty.hidden = true;
  connection.set('closed', 'Signed out');
}

function wireUi() {
  wireComposer(ui.form, ui.composer, submitComposer);
  ui.composer.addEventListener('input', () => {
    autoGrow();
    updateCount();
    if (ui.composer.value.trim()) maybeSendTyping();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && embedded) tell({ type: 'confidant:close' });
  });
  document.addEventListener('visibilitychange', markReadIfVisible);
  window.addEventListener('online', () => {
    retryWaitingDeliveries();
    if (state.socket) showConnection(state.socket.state);
  });
  window.addEventListener('offline', () => {
    if (state.socket) showConnection(state.socket.state);
  });
  if (embedded) {
    ui.close.hidden = false;
    ui.close.addEventListener('click', () => tell({ type: 'confidant:close' }));
  }
  if (files) {
    ui.attach.hidden = false;
    ui.attachInput.accept = (config.attachments.allowedTypes || []).join(',');
    ui.attach.addEventListener('click', () => ui.attachInput.click());
    ui.attachInput.addEventListener('change', () => {
      files.add([...ui.attachInput.files]);
      ui.attachInput.value = '';
    });
    wireDrop(ui.form, (picked) => files.add(picked));
  }
}

function boot() {
  if (!config) {
    ui.loading.hidden = true;
    showError('unavailable', 'the messenger configuration is missing', false);
    return;
  }
  if (config.name) {
    ui.name.textContent = config.name;
    document.title = `${config.name} — secure messages`;
  }
  wireUi();
  if (!embedded) {
    ui.loading.hidden = true;
    setNotice(ui.error, 'This messenger opens from the website where you are signed in.');
    connection.set('offline', 'Not connected');
    return;
  }
  window.addEventListener('message', onParentMessage);
  sayHello();
}

boot();
