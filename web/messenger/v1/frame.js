// The messenger inside the iframe (served from the Confidant server's origin).
//
// Token: received from the parent page by postMessage only, kept in memory only.
// History: REST, from the newest message back: the newest conversation's last page first, then
// older pages and older conversations (each closed one ending in a divider) as the customer
// scrolls up. Live: WebSocket (auth frame first, resume on every (re)connect).
// Sending: one clientMessageId per message, retried unchanged until 200/201.
// Appearance: title, colour, greeting, and outside business hours the away message, from the
// server's /api/v1/messenger/config (open/closed computed there, in the business's zone).
import { h, $, $$, setNotice } from '../../shared/dom.js';
import { apiFetch, ApiError } from '../../shared/http.js';
import { LiveSocket, SocketState, socketUrl } from '../../shared/live-socket.js';
import { Delivery, DeliveryState } from '../../shared/outbox.js';
import { uuid, charLength, MAX_BODY_CHARS } from '../../shared/format.js';
import { Thread, ConnectionLabel, PAGE_SIZE, isMessage, readMessages, wireComposer } from '../../shared/thread.js';
import { AttachmentTray, attachmentList, fetchBlob, uploadFile, wireDrop } from '../../shared/attachments.js';

const NEED_TOKEN_GRACE_MS = 8000;
/** Messages per history page read from the end of a conversation (the contract's default). */
const HISTORY_PAGE = 50;
/** Closer to the top than this (px) loads earlier messages. */
const NEAR_TOP_PX = 120;
/** The availability is asked again at the next opening or closing, and at least this often. */
const AVAILABILITY_RECHECK_MS = 15 * 60 * 1000;
const DEFAULT_EMPTY_TEXT = 'Send us a message. Only you and our team can read this conversation.';

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
  log: $('#message-log'),
  typing: $('#typing'),
  form: $('#composer-form'),
  composer: $('#composer'),
  send: $('#send'),
  attach: $('#attach'),
  attachInput: $('#attach-input'),
  tray: $('#attachment-tray'),
  count: $('#composer-count'),
  close: $('#frame-close'),
  account: $('#frame-account'),
  away: $('#frame-away'),
  awayMessage: $('#away-message'),
  replyTime: $('#away-reply-time'),
  awayEmail: $('#away-email'),
  older: $('#older'),
  loadOlder: $('#load-older'),
  olderLoading: $('#older-loading'),
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
  olderLoading: false,
  /** The customer was at the bottom when last seen scrolling (kept there when shown again). */
  nearBottom: true,
  /** Modal (the full-screen panel on a phone): Tab stays inside the frame. */
  modal: false,
  me: null,
  appearance: null,
  availabilityTimer: null,
};
/**
 * conversationId -> { id, status, createdAt, order, lastSeq, loadedFrom, others:Set,
 * agentReadSeq, contactReadSeq, readSent, divider }. `order` (the creation time, ms) places
 * conversations one after another and never changes; `loadedFrom` is the lowest seq shown
 * (lastSeq + 1: none yet).
 */
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
      state.modal = Boolean(data.visible && data.modal);
      if (state.visibleInParent) {
        ui.composer.focus({ preventScroll: true });
        // Laid out only now when it was hidden: to the bottom, and fill the view with history.
        requestAnimationFrame(() => {
          if (state.nearBottom) thread.scrollToBottom(true);
          fillView();
        });
      }
      markReadIfVisible();
      break;
    case 'confidant:focus':
      focusEdge(data.where);
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
    for (const c of list) upsertConversation(c);
    const newest = newestConversation();
    if (newest) await loadTail(newest);
    // An older conversation with a reply the customer has not read (answered and closed
    // while they were away) shows its end too, so the reply and the unread count are there.
    const unread = [...conversations.values()]
      .filter((c) => c !== newest && c.contactReadSeq < c.lastSeq && c.lastSenderType === 'agent')
      .sort((a, b) => b.order - a.order)
      .slice(0, 3);
    for (const c of unread) await loadTail(c);
    if (state.dead) return;
    state.historyLoaded = true;
    ui.loading.hidden = true;
    updateEmpty();
    updateOlder();
    thread.scrollToBottom(true);
    fillView();
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

function messagesPath(conversationId, after, limit) {
  return `/api/v1/messenger/conversations/${encodeURIComponent(conversationId)}/messages?after=${after}&limit=${limit}`;
}

/** Every message after `afterSeq` (pages of the thread's size), e.g. after a reconnect. */
function loadMessages(conversationId, afterSeq) {
  return readMessages(
    (after, limit) => api(messagesPath(conversationId, after, limit)),
    afterSeq,
    (m) => acceptMessage(m, false),
    () => state.dead,
  );
}

/** The last page of a conversation and anything after it. */
async function loadTail(conv) {
  const after = Math.max(0, conv.lastSeq - HISTORY_PAGE);
  thread.startAfter(conv.id, after);
  await loadMessages(conv.id, after);
  if (state.dead) return;
  conv.loadedFrom = Math.min(conv.loadedFrom, after + 1);
  conv.lastSeq = Math.max(conv.lastSeq, thread.lastSeq(conv.id));
  showDivider(conv);
}

/** The conversation whose earlier messages come next going up (newest first), or null. */
function nextOlder() {
  return [...conversations.values()].filter((c) => c.loadedFrom > 1).sort((a, b) => b.order - a.order)[0] || null;
}

function updateOlder() {
  ui.older.hidden = !state.historyLoaded || !nextOlder();
}

/**
 * One page of earlier messages above what is shown: of the lowest conversation still
 * missing some, else the end of the next older one. The view stays on what the customer
 * was reading.
 */
async function loadOlder() {
  if (state.olderLoading || !state.historyLoaded || state.dead) return;
  const conv = nextOlder();
  if (!conv) return;
  state.olderLoading = true;
  ui.olderLoading.hidden = false;
  ui.log.setAttribute('aria-busy', 'true'); // earlier messages are not news to announce
  const serial = state.tokenSerial;
  const scroller = ui.body;
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  try {
    const to = conv.loadedFrom - 1; // the highest seq not shown yet
    const from = Math.max(1, to - HISTORY_PAGE + 1);
    if (to >= conv.lastSeq) thread.startAfter(conv.id, from - 1); // nothing of it shown yet
    const data = await api(messagesPath(conv.id, from - 1, to - from + 1));
    if (state.dead) return;
    for (const m of (data && data.messages) || []) acceptMessage(m, false, { scroll: false });
    conv.loadedFrom = from;
    showDivider(conv);
    scroller.scrollTop = scroller.scrollHeight - fromBottom;
    postUnread();
  } catch (err) {
    if (!state.dead && (serial === state.tokenSerial || !(err instanceof ApiError) || err.status !== 401)) handleApiError(err);
  } finally {
    state.olderLoading = false;
    ui.olderLoading.hidden = true;
    ui.log.removeAttribute('aria-busy');
    updateOlder();
  }
}

/** Load earlier messages while the view has no scroll bar to scroll up with (and is shown). */
async function fillView() {
  const el = ui.body;
  let guard = 20;
  while (guard-- > 0 && !state.dead && el.clientHeight > 0 && el.scrollHeight <= el.clientHeight + 8 && nextOlder()) {
    await loadOlder();
  }
}

/** After a reconnect: pick up conversations opened meanwhile (e.g. from another tab). */
async function refreshConversationList() {
  try {
    const data = await api('/api/v1/messenger/conversations');
    if (state.dead) return;
    for (const c of (data && data.conversations) || []) {
      const known = conversations.has(c.conversationId);
      const conv = upsertConversation(c);
      if (!known && conv === newestConversation()) {
        conv.loadedFrom = 1;
        resume(c.conversationId);
      }
    }
    updateOlder();
  } catch {
    // best effort; the socket keeps working
  }
}

// ---------------------------------------------------------------------------------------------
// Conversations and messages

function newestConversation() {
  let newest = null;
  for (const c of conversations.values()) if (!newest || c.order > newest.order) newest = c;
  return newest;
}

/** Add or update a conversation from the API (or a message of one not seen before). */
function upsertConversation(c) {
  let conv = conversations.get(c.conversationId);
  if (!conv) {
    const created = Date.parse(c.createdAt || '');
    conv = {
      id: c.conversationId,
      status: 'open',
      createdAt: c.createdAt || null,
      order: Number.isFinite(created) ? created : Date.now(),
      lastSeq: 0,
      loadedFrom: 1,
      lastSenderType: null,
      others: new Set(),
      agentReadSeq: 0,
      contactReadSeq: 0,
      readSent: 0,
      divider: null,
    };
    if (Number.isInteger(c.lastSeq)) {
      conv.lastSeq = c.lastSeq;
      conv.loadedFrom = c.lastSeq + 1; // from the list: nothing of it shown yet
    }
    conversations.set(conv.id, conv);
  }
  if (c.status) conv.status = c.status;
  if (c.createdAt) conv.createdAt = c.createdAt;
  if (Number.isInteger(c.lastSeq)) conv.lastSeq = Math.max(conv.lastSeq, c.lastSeq);
  if (c.lastMessage && c.lastMessage.sender) conv.lastSenderType = c.lastMessage.sender.type;
  if (Number.isInteger(c.agentReadSeq)) conv.agentReadSeq = Math.max(conv.agentReadSeq, c.agentReadSeq);
  if (Number.isInteger(c.contactReadSeq)) {
    conv.contactReadSeq = Math.max(conv.contactReadSeq, c.contactReadSeq);
    conv.readSent = Math.max(conv.readSent, c.contactReadSeq);
  }
  state.currentConversationId = newestConversation().id;
  showDivider(conv);
  return conv;
}

function conversationDate(conv) {
  const d = new Date(conv.createdAt || conv.order);
  if (Number.isNaN(d.getTime())) return '';
  const sameYear = d.getFullYear() === new Date().getFullYear();
  return d.toLocaleDateString([], sameYear ? { day: 'numeric', month: 'short' } : { day: 'numeric', month: 'short', year: 'numeric' });
}

/**
 * A closed conversation ends in a divider ("Conversation of 12 Nov, closed"): what is above
 * it is that conversation, what is below a later one. Shown once some of it is.
 */
function showDivider(conv) {
  if (conv.status !== 'closed' || conv.divider || thread.lastSeq(conv.id) === 0) return;
  const li = h('li', {
    class: 'conversation-divider',
    'data-testid': 'conversation-divider',
    'data-conversation-id': conv.id,
    'data-order': String(conv.order),
    'data-seq': String(Number.MAX_SAFE_INTEGER),
    'data-state': 'sent',
    text: `Conversation of ${conversationDate(conv)}, closed`,
  });
  conv.divider = li;
  thread.place(li);
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
function acceptMessage(message, live, { scroll = true } = {}) {
  if (!isMessage(message)) return false;
  const conv = conversations.get(message.conversationId) || upsertConversation({ conversationId: message.conversationId, createdAt: message.createdAt });
  const shown = thread.show(message, { live, scroll });
  if (!shown) return false;
  conv.lastSeq = Math.max(conv.lastSeq, message.seq);
  if (message.sender && (!conv.lastSenderType || message.seq >= conv.lastSeq)) conv.lastSenderType = message.sender.type;
  if (!shown.fromMe) conv.others.add(message.seq);
  showDivider(conv);
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
  updateOlder();
}

// ---------------------------------------------------------------------------------------------
// Appearance, availability and the signed-in account

/** '#rrggbb' -> relative luminance (WCAG 2). */
function luminance(hex) {
  const [r, g, b] = [1, 3, 5].map((i) => {
    const c = parseInt(hex.slice(i, i + 2), 16) / 255;
    return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** The messenger's colour on the header and the customer's bubbles, with readable text on it. */
function applyColor(color) {
  if (!/^#[0-9a-f]{6}$/i.test(color || '')) return;
  const l = luminance(color);
  // White or near-black, whichever contrasts more with the colour.
  const text = (1.05 / (l + 0.05)) >= ((l + 0.05) / (luminance('#1b2430') + 0.05)) ? '#ffffff' : '#1b2430';
  const root = document.documentElement.style;
  root.setProperty('--accent', color);
  root.setProperty('--accent-text', text);
}

/**
 * Show the messenger's look and, outside business hours, the away message, the expected reply
 * time and (when offline notices by email are on and the customer has an email address) that
 * a reply comes by email too.
 */
function applyAppearance(a) {
  if (!a || typeof a !== 'object' || state.dead) return;
  state.appearance = a;
  const title = a.title || (config && config.name) || 'Secure messages';
  ui.name.textContent = title;
  document.title = `${title} — secure messages`;
  applyColor(a.color);
  ui.empty.textContent = a.greeting || DEFAULT_EMPTY_TEXT;
  ui.empty.classList.toggle('greeting', Boolean(a.greeting));
  const away = a.open === false;
  ui.away.hidden = !away;
  if (away) {
    ui.awayMessage.textContent = a.awayMessage || 'We are away right now. Leave us a message and we will answer when we are back.';
    ui.replyTime.textContent = a.replyTime ? `Expected reply: ${a.replyTime}` : '';
    ui.replyTime.hidden = !a.replyTime;
  }
  updateEmailLine();
  scheduleAvailability(a);
}

function updateEmailLine() {
  const a = state.appearance;
  const email = state.me && state.me.attributes && state.me.attributes.email;
  ui.awayEmail.hidden = !(a && a.open === false && a.emailNotices && email);
}

/** Ask the server again when the hours open or close (and now and then, for changes). */
function scheduleAvailability(a) {
  clearTimeout(state.availabilityTimer);
  if (!embedded) return;
  const next = Date.parse((a.open ? a.nextClose : a.nextOpen) || '');
  const delay = Number.isFinite(next) ? Math.min(Math.max(next - Date.now() + 1000, 5000), AVAILABILITY_RECHECK_MS) : AVAILABILITY_RECHECK_MS;
  state.availabilityTimer = setTimeout(refreshAppearance, delay);
}

async function refreshAppearance() {
  if (state.dead || !config) return;
  try {
    const q = `siteId=${encodeURIComponent(config.siteId)}&messengerId=${encodeURIComponent(config.messengerId)}`;
    applyAppearance(await apiFetch(`/api/v1/messenger/config?${q}`, { credentials: 'omit' }));
  } catch {
    if (state.appearance) scheduleAvailability({ open: state.appearance.open }); // try again later
  }
}

/** "Signed in as …": the contact's name and email from the token's profile claims. */
async function loadMe() {
  const serial = state.tokenSerial;
  try {
    const me = await api('/api/v1/messenger/me');
    if (state.dead || !me || typeof me !== 'object') return;
    state.me = me;
    const attrs = me.attributes || {};
    const name = typeof attrs.name === 'string' ? attrs.name.trim() : '';
    const email = typeof attrs.email === 'string' ? attrs.email.trim() : '';
    const who = name && email ? `${name} (${email})` : name || email || String(me.identity || '');
    ui.account.textContent = who ? `Signed in as ${who}` : '';
    ui.account.title = ui.account.textContent;
    ui.account.hidden = !who;
    updateEmailLine();
  } catch (err) {
    // The account line is a nicety; a 401 is handled by the calls that need the token.
    if (serial !== state.tokenSerial) return;
  }
}

// ---------------------------------------------------------------------------------------------
// Focus while the panel is a modal dialog (a phone's full screen): Tab and Shift+Tab go round
// inside the frame, Esc closes (the page's loader puts focus back on its launcher).

function focusables() {
  return $$('button, textarea, input, a[href], [tabindex]:not([tabindex="-1"])').filter(
    (el) => !el.disabled && !el.hidden && el.getClientRects().length > 0 && el.tabIndex >= 0,
  );
}

function trapTab(event) {
  if (event.key !== 'Tab' || !state.modal) return;
  const list = focusables();
  if (!list.length) return;
  const first = list[0];
  const last = list[list.length - 1];
  const active = document.activeElement;
  const inside = list.includes(active);
  if (event.shiftKey && (active === first || !inside)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && (active === last || !inside)) {
    event.preventDefault();
    first.focus();
  }
}

function focusEdge(where) {
  const list = focusables();
  if (!list.length) return;
  (where === 'last' ? list[list.length - 1] : where === 'first' ? list[0] : ui.composer.disabled ? list[0] : ui.composer).focus({ preventScroll: true });
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
  // An earlier conversation not shown yet waits for the customer to scroll up to it.
  if (!conv || !state.socket || conv.loadedFrom > Math.max(conv.lastSeq, 1)) return;
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
        const conv = upsertConversation(msg.conversation);
        if (!known) {
          conv.loadedFrom = 1; // a conversation opened now: the socket brings all of it
          resume(msg.conversation.conversationId);
        }
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
    loadMe();
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
  clearTimeout(state.availabilityTimer);
  state.token = null;
  state.me = null;
  ui.account.textContent = '';
  ui.account.hidden = true;
  ui.older.hidden = true;
  updateEmailLine();
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
    trapTab(event);
  });
  ui.body.addEventListener('scroll', () => {
    if (ui.body.clientHeight === 0) return;
    state.nearBottom = thread.isNearBottom();
    if (ui.body.scrollTop < NEAR_TOP_PX) loadOlder();
  }, { passive: true });
  ui.loadOlder.addEventListener('click', () => loadOlder());
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
  applyAppearance(config.appearance);
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
