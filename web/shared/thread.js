// The message thread of the agent console and the messenger frame: messages in seq order and
// each only once, our own messages pending until the server confirms them, "Seen" under our
// last message, "… is typing…", staying at the bottom while the person is there, and the
// connection label. What only one page does (the console's inbox, the frame's page bridge and
// unread count, when to retry a delivery) stays in that page.
import { h, clear } from './dom.js';
import { formatTime } from './format.js';
import { SocketState } from './live-socket.js';

export const PAGE_SIZE = 200;
const TYPING_EVERY_MS = 2000;
const TYPING_SHOWN_MS = 5000;
/** Closer to the bottom than this (px) counts as "at the bottom": new messages keep it there. */
const NEAR_BOTTOM_PX = 80;

/**
 * A message body as nodes: text, with each http(s) URL in it a link that opens in a new tab
 * without telling the target where it came from. Never HTML from the message: every piece is
 * a text node or an <a> whose href is a URL that parsed as http: or https:. Other schemes
 * (javascript:, data:, …) are never matched, so they stay text.
 */
export function linkified(text) {
  const out = [];
  const re = /\bhttps?:\/\/[^\s<>"'`]+/gi;
  let last = 0;
  for (const m of text.matchAll(re)) {
    let url = m[0];
    // Punctuation that ends a sentence is not part of the link; nor is a ")" that closes a
    // parenthesis opened before the URL.
    for (;;) {
      const end = url[url.length - 1];
      if ('.,;:!?\'"'.includes(end)) url = url.slice(0, -1);
      else if (end === ')' && (url.match(/\(/g) || []).length < (url.match(/\)/g) || []).length) url = url.slice(0, -1);
      else break;
    }
    let href = null;
    try {
      const parsed = new URL(url);
      if ((parsed.protocol === 'http:' || parsed.protocol === 'https:') && parsed.hostname) href = parsed.href;
    } catch {
      href = null;
    }
    if (!href) continue;
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    out.push(h('a', { href, target: '_blank', rel: 'noopener noreferrer', text: url }));
    last = m.index + url.length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

/** A message as the contract describes it (enough of it to place and deduplicate). */
export function isMessage(m) {
  return Boolean(m && m.messageId && m.conversationId && Number.isInteger(m.seq));
}

/**
 * Read a conversation's messages after `afterSeq`, a page at a time, handing each to `each`.
 * fetchPage(after, limit) resolves with the API's `{ messages }`; stops when stale() turns true.
 */
export async function readMessages(fetchPage, afterSeq, each, stale) {
  let after = afterSeq;
  for (;;) {
    const data = await fetchPage(after, PAGE_SIZE);
    if (stale()) return;
    const messages = (data && data.messages) || [];
    messages.forEach(each);
    if (messages.length < PAGE_SIZE) return;
    after = messages[messages.length - 1].seq;
  }
}

export class Thread {
  /**
   * @param {object} opts
   * @param {HTMLElement} opts.list      the <ol> of messages
   * @param {HTMLElement} opts.scroller  the element that scrolls it
   * @param {HTMLElement} opts.typing    the "… is typing…" line
   * @param {string} opts.me             sender type of the person using this page: 'agent' | 'contact'
   * @param {string} opts.itemClass      class of every message item ('msg' in the console, 'message' in the frame)
   * @param {string} opts.seenText       what stands under our last message once the other side read it
   * @param {(conversationId: string) => number} opts.readByOthers  the highest seq the other side has read
   * @param {(message: object) => (Node|string)} opts.who   before the time under a message (not for system ones)
   * @param {(message: object) => string} [opts.label]      a name above the bubble, or ''
   * @param {(conversationId: string) => number} [opts.orderOf]  conversations shown one after another, in this order
   * @param {(conversationId: string) => void} [opts.onGap]      a live message skipped seqs: ask for the missing ones
   */
  constructor({ list, scroller, typing, me, itemClass, seenText, readByOthers, who, label = () => '', orderOf = () => 0, onGap = () => {}, attachments = () => null }) {
    /** (message) -> the node that shows its attachments, or null */
    this.attachments = attachments;
    this.list = list;
    this.scroller = scroller;
    this.typingEl = typing;
    this.me = me;
    this.itemClass = itemClass;
    this.seenText = seenText;
    this.readByOthers = readByOthers;
    this.who = who;
    this.label = label;
    this.orderOf = orderOf;
    this.onGap = onGap;
    /** messageId -> li */
    this.items = new Map();
    /** clientMessageId -> { li, delivery } for our own messages not confirmed yet */
    this.pending = new Map();
    /** conversationId -> { lastSeq (every seq up to it is shown), seqs } */
    this.seqs = new Map();
    this.typingTimer = null;
    this.lastTypingSentAt = 0;
  }

  /** The highest seq up to which every message of the conversation is shown (0: none). */
  lastSeq(conversationId) {
    const track = this.seqs.get(conversationId);
    return track ? track.lastSeq : 0;
  }

  /** The seq bookkeeping of a conversation (created empty). */
  track(conversationId) {
    let track = this.seqs.get(conversationId);
    if (!track) {
      track = { lastSeq: 0, seqs: new Set() };
      this.seqs.set(conversationId, track);
    }
    return track;
  }

  /**
   * The conversation is shown from `seq + 1` on (its history was read from the end): the
   * messages up to `seq` count as there for lastSeq (no gap to ask the socket for). Older
   * pages shown later go above, in seq order.
   */
  startAfter(conversationId, seq) {
    const track = this.track(conversationId);
    if (track.lastSeq < seq) track.lastSeq = seq;
    while (track.seqs.has(track.lastSeq + 1)) track.lastSeq += 1;
  }

  /**
   * Show a message from history, the socket or a send's answer; idempotent by messageId.
   * Returns null when it was already shown, else { fromMe, wasPending } (wasPending: it confirms
   * one of this page's pending items). `scroll: false` (older history above) keeps the view
   * where it is.
   */
  show(message, { live = false, scroll = true } = {}) {
    if (!isMessage(message)) return null;
    const sender = message.sender || { type: 'system' };
    const fromMe = sender.type === this.me;
    const mine = fromMe && message.clientMessageId ? this.pending.get(message.clientMessageId) : null;
    if (this.items.has(message.messageId)) {
      // The socket showed it already in an item of its own: the pending one is left over.
      if (mine) this.dropPending(message.clientMessageId);
      return null;
    }
    const nearBottom = this.isNearBottom();
    let li;
    if (mine) {
      li = mine.li;
      mine.delivery.cancel();
      this.pending.delete(message.clientMessageId);
    } else {
      li = h('li');
    }
    this.render(li, message, sender);
    this.place(li);
    this.items.set(message.messageId, li);

    const track = this.track(message.conversationId);
    track.seqs.add(message.seq);
    const gap = message.seq > track.lastSeq + 1;
    while (track.seqs.has(track.lastSeq + 1)) track.lastSeq += 1;
    if (gap && live) this.onGap(message.conversationId); // we missed something: ask for it

    if (!fromMe) this.hideTyping();
    this.updateSeen();
    if (scroll) this.scrollToBottom(nearBottom || fromMe);
    return { fromMe, wasPending: Boolean(mine) };
  }

  render(li, message, sender) {
    const type = sender.type;
    li.className = `${this.itemClass} from-${type}${type === 'system' ? ' system' : ''}`;
    li.setAttribute('data-testid', 'message');
    li.dataset.seq = String(message.seq);
    li.dataset.senderType = type;
    li.dataset.conversationId = message.conversationId;
    li.dataset.messageId = message.messageId;
    li.dataset.order = String(this.orderOf(message.conversationId) ?? 0);
    li.dataset.state = 'sent';
    clear(li);
    const label = this.label(message);
    if (label) li.append(h('span', { class: 'sender', text: label }));
    if (message.body) li.append(h('div', { class: 'bubble' }, linkified(message.body)));
    if (message.attachments && message.attachments.length) {
      const files = this.attachments(message);
      if (files) li.append(files);
    }
    if (type !== 'system') {
      li.append(h('span', { class: 'meta' }, this.who(message), h('time', { datetime: message.createdAt, text: formatTime(message.createdAt) })));
    }
  }

  /** Insert a confirmed item in (conversation order, seq) order, before any pending items. */
  place(li) {
    const order = Number(li.dataset.order);
    const seq = Number(li.dataset.seq);
    let before = null;
    const items = this.list.children;
    for (let i = items.length - 1; i >= 0; i--) {
      const item = items[i];
      if (item === li) continue;
      if (item.dataset.state !== 'sent') {
        before = item; // pending items stay last
        continue;
      }
      const o = Number(item.dataset.order);
      const s = Number(item.dataset.seq);
      if (o < order || (o === order && s < seq)) break;
      before = item;
    }
    if (li.nextSibling === before && li.parentNode === this.list) return;
    this.list.insertBefore(li, before);
  }

  /** "Seen" under our last confirmed message once the other side has read it. */
  updateSeen() {
    const old = this.list.querySelector('.seen');
    const ours = this.list.querySelectorAll(`li[data-sender-type="${this.me}"][data-state="sent"]`);
    const last = ours[ours.length - 1];
    const want = Boolean(last && this.readByOthers(last.dataset.conversationId) >= Number(last.dataset.seq));
    if (want && old && old.parentNode === last) return;
    if (old) old.remove();
    if (want) last.append(h('p', { class: 'seen', 'data-testid': 'seen', text: this.seenText }));
  }

  // -------------------------------------------------------------------------------------------
  // Our own messages until the server confirms them

  /** Show a message of ours at the bottom, pending, while `delivery` (outbox.js) sends it. */
  addPending(clientMessageId, body, delivery, files = []) {
    const li = h(
      'li',
      { class: `${this.itemClass} from-${this.me} pending`, 'data-testid': 'message', 'data-sender-type': this.me, 'data-state': 'pending' },
      h('div', { class: 'bubble', text: body }),
    );
    if (!body) li.firstChild.remove();
    if (files.length) li.append(h('div', { class: 'attachments' }, files.map((f) => h('span', { class: 'attachment-chip', text: f.filename }))));
    this.list.append(li);
    this.pending.set(clientMessageId, { li, delivery });
    this.scrollToBottom(true);
    return li;
  }

  /**
   * A pending item's delivery state (DeliveryState, not SENT) in words under its bubble;
   * `retry` is the label of a button that retries at once.
   */
  pendingState(clientMessageId, state, text, { failed = false, retry = null } = {}) {
    const entry = this.pending.get(clientMessageId);
    if (!entry) return;
    const { li, delivery } = entry;
    li.dataset.state = state;
    li.classList.toggle('failed', failed);
    li.classList.toggle('pending', !failed);
    let status = li.querySelector('.status');
    if (!status) {
      status = h('p', { class: 'status', 'data-testid': 'message-status' });
      li.append(status);
    }
    clear(status);
    status.append(h('span', { text }));
    if (retry) {
      const button = h('button', { type: 'button', class: 'link', text: retry });
      button.addEventListener('click', () => delivery.retryNow());
      status.append(' ', button);
    }
  }

  dropPending(clientMessageId) {
    const entry = this.pending.get(clientMessageId);
    if (!entry) return;
    entry.delivery.cancel();
    entry.li.remove();
    this.pending.delete(clientMessageId);
  }

  /** The deliveries of the pending items (to retry them when a token or the network is back). */
  deliveries() {
    return [...this.pending.values()].map((entry) => entry.delivery);
  }

  /** Empty the thread: no items, no pending sends (cancelled), no seqs, no typing line. */
  reset() {
    for (const { delivery } of this.pending.values()) delivery.cancel();
    this.pending.clear();
    this.items.clear();
    this.seqs.clear();
    clear(this.list);
    this.hideTyping();
  }

  // -------------------------------------------------------------------------------------------
  // Typing

  /** "<name> is typing…" for a few seconds (the other side typed). */
  showTyping(name) {
    this.typingEl.textContent = `${name} is typing…`;
    this.typingEl.hidden = false;
    clearTimeout(this.typingTimer);
    this.typingTimer = setTimeout(() => this.hideTyping(), TYPING_SHOWN_MS);
  }

  hideTyping() {
    clearTimeout(this.typingTimer);
    this.typingEl.hidden = true;
    this.typingEl.textContent = '';
  }

  /** We type: tell the other side over the socket, at most every few seconds. */
  sendTyping(socket, conversationId) {
    if (!socket) return;
    const now = Date.now();
    if (now - this.lastTypingSentAt < TYPING_EVERY_MS) return;
    if (socket.send({ type: 'typing', conversationId })) this.lastTypingSentAt = now;
  }

  // -------------------------------------------------------------------------------------------
  // Scrolling

  isNearBottom() {
    const el = this.scroller;
    return el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_BOTTOM_PX;
  }

  scrollToBottom(force) {
    if (force) this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

/**
 * The live connection's state in a status element: `data-state` (styled by the page) and words.
 * The pages differ only in what "connected" and "closed" are called.
 */
export class ConnectionLabel {
  constructor(el, { connected, closed }) {
    this.el = el;
    this.text = {
      [SocketState.IDLE]: 'Connecting…',
      [SocketState.CONNECTING]: 'Connecting…',
      [SocketState.CONNECTED]: connected,
      [SocketState.RECONNECTING]: 'Reconnecting…',
      [SocketState.UNAUTHORIZED]: 'Reconnecting…',
      [SocketState.CLOSED]: closed,
    };
  }

  /** A LiveSocket state (SocketState). */
  show(socketState) {
    this.set(socketState, this.text[socketState] || 'Connecting…');
  }

  /** A state of the page's own ('polling', 'offline', …). */
  set(key, text) {
    this.el.dataset.state = key;
    this.el.textContent = text;
  }
}

/** Enter sends (Shift+Enter: a new line), as does the form's own submit. */
export function wireComposer(form, textarea, submit) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    submit();
  });
  textarea.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey && !event.metaKey) {
      event.preventDefault();
      submit();
    }
  });
}
