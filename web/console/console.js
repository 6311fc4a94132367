// Agent console: inbox, conversation view, replies, live updates over /api/v1/agent/ws.
import { h, $, clear, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { LiveSocket, socketUrl } from '../shared/live-socket.js';
import { Delivery, DeliveryState } from '../shared/outbox.js';
import { formatTime, formatDateTime, describeError, uuid, charLength, MAX_BODY_CHARS } from '../shared/format.js';
import { api, currentToken, socketTicket, noteEnded } from '../shared/session.js';
import { AttachmentTray, attachmentList, fetchBlob, uploadFile, wireDrop } from '../shared/attachments.js';
import { startAgentPage, defaultSiteId } from '../shared/login.js';
import { Thread, ConnectionLabel, readMessages, wireComposer } from '../shared/thread.js';
import { CannedPicker } from './canned.js';
import { Alerts } from './alerts.js';
import { ContactPanel, fillAttributes } from './contact-panel.js';

const ui = {
  error: $('#app-error'),
  liveState: $('#live-state'),
  adminLink: $('#admin-link'),
  tabOpen: $('#tab-open'),
  tabClosed: $('#tab-closed'),
  previewToggle: $('#preview-toggle'),
  list: $('#conversation-list'),
  inboxEmpty: $('#inbox-empty'),
  noSelection: $('#no-selection'),
  view: $('#conversation-view'),
  contactName: $('#contact-name'),
  contactIdentity: $('#contact-identity'),
  contactAttributes: $('#contact-attributes'),
  previewTag: $('#preview-tag'),
  statusTag: $('#status-tag'),
  notifiedTag: $('#notified-tag'),
  closeButton: $('#close-conversation'),
  reopenButton: $('#reopen-conversation'),
  closeDialog: $('#close-dialog'),
  closeConfirm: $('#close-confirm'),
  closeCancel: $('#close-cancel'),
  toast: $('#toast'),
  toastText: $('#toast-text'),
  toastUndo: $('#toast-undo'),
  messengerFilterRow: $('#messenger-filter-row'),
  messengerFilter: $('#messenger-filter'),
  messengerTag: $('#messenger-tag'),
  scroll: $('#messages-scroll'),
  messagesLoading: $('#messages-loading'),
  messages: $('#messages'),
  typing: $('#typing'),
  closedNote: $('#closed-note'),
  replyForm: $('#reply-form'),
  reply: $('#reply'),
  replySend: $('#reply-send'),
  replyAttach: $('#reply-attach'),
  replyAttachInput: $('#reply-attach-input'),
  replyTray: $('#reply-tray'),
  filterMine: $('#filter-mine'),
  filterUnassigned: $('#filter-unassigned'),
  filterAll: $('#filter-all'),
  assigneeTag: $('#assignee-tag'),
  assignMe: $('#assign-me'),
  unassign: $('#unassign'),
  assignTo: $('#assign-to'),
  cannedList: $('#canned-list'),
  notifyButton: $('#desktop-notifications'),
  soundToggle: $('#sound-toggle'),
};

// ---------------------------------------------------------------------------------------------
// State

const state = {
  siteId: null,
  filter: { status: 'open', preview: false, assignee: 'all', messengerId: '' },
  /** messengerId -> messenger name (the site's live messengers) */
  messengers: new Map(),
  /** After a filter change: show a conversation of the new list, not the one left on screen. */
  pickAfterLoad: false,
  /** The signed-in agent (null for the operator), and the site's agents (admins only). */
  me: null,
  agents: [],
  socket: null,
  reloadTimer: null,
  inboxLoadSerial: 0,
  active: false,
};
/** conversationId -> conversation (as listed, kept up to date by live events) */
const conversations = new Map();
/** The conversation on screen; its messages are in `thread`. */
let view = null;

const thread = new Thread({
  list: ui.messages,
  scroller: ui.scroll,
  typing: ui.typing,
  me: 'agent',
  itemClass: 'msg',
  seenText: 'Seen by the customer',
  readByOthers: () => {
    const c = viewConversation();
    return (c && c.contactReadSeq) || 0;
  },
  who: (m) => `${m.sender.type === 'agent' ? m.sender.name || 'Agent' : 'Customer'} · `,
  onGap: () => resumeView(),
  attachments: (m) =>
    attachmentList(m.attachments, {
      urlOf: (id) => sitePath(`/attachments/${encodeURIComponent(id)}`),
      get: (url) => fetchBlob(url, { token: currentToken(), credentials: 'same-origin' }),
    }),
});

/** Files picked for the next reply (CONTRACT §11); the server answers 403 when the
 * conversation's messenger takes none, and the tray shows why. */
const files = new AttachmentTray(ui.replyTray, {
  upload: (file, onProgress) => {
    const c = viewConversation();
    if (!c) return Promise.reject({ message: 'no conversation is open' });
    return uploadFile(sitePath(`/conversations/${encodeURIComponent(view.id)}/attachments`), { token: currentToken(), file, onProgress, withCredentials: true });
  },
  onChange: () => updateReplyButton(),
});

const liveState = new ConnectionLabel(ui.liveState, { connected: 'Live', closed: 'Offline' });

// ---------------------------------------------------------------------------------------------
// Errors

function showError(text) {
  setNotice(ui.error, text);
}

function reportError(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionEnded();
    return;
  }
  showError(describeError(err));
}

// ---------------------------------------------------------------------------------------------
// Inbox

function sitePath(rest) {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}${rest}`;
}

async function loadInbox() {
  const serial = ++state.inboxLoadSerial;
  const { status, preview } = state.filter;
  try {
    const { assignee } = state.filter;
    const who = assignee === 'all' ? '' : `&assignee=${assignee}`;
    const which = state.filter.messengerId ? `&messengerId=${encodeURIComponent(state.filter.messengerId)}` : '';
    const data = await api(sitePath(`/conversations?status=${status}&preview=${preview}${who}${which}`));
    if (serial !== state.inboxLoadSerial || !state.active) return;
    conversations.clear();
    for (const c of (data && data.conversations) || []) conversations.set(c.conversationId, c);
    if (view && !conversations.has(view.id)) {
      // keep the one on screen known, even if it left this list (closed, other tab)
      const keep = viewConversation();
      if (keep) conversations.set(keep.conversationId, keep);
    }
    renderInbox();
    if (state.pickAfterLoad) {
      state.pickAfterLoad = false;
      showFirstIfStale();
    }
    if (ui.error.dataset.kind === 'inbox') setNotice(ui.error, '');
  } catch (err) {
    if (serial !== state.inboxLoadSerial) return;
    reportError(err);
    ui.error.dataset.kind = 'inbox';
  }
}

let viewSnapshot = null;
function viewConversation() {
  return (view && conversations.get(view.id)) || viewSnapshot;
}

function scheduleInboxReload() {
  clearTimeout(state.reloadTimer);
  state.reloadTimer = setTimeout(loadInbox, 300);
}

function matchesFilter(c) {
  if (c.status !== state.filter.status || Boolean(c.preview) !== state.filter.preview) return false;
  if (state.filter.messengerId && c.messengerId !== state.filter.messengerId) return false;
  switch (state.filter.assignee) {
    case 'me':
      return Boolean(c.assignee && state.me && c.assignee.agentId === state.me.agentId);
    case 'none':
      return !c.assignee;
    default:
      return true;
  }
}

/** The contact's messages after the agents' read marker (CONTRACT §16), kept live. */
function unreadOf(c) {
  if (Number.isInteger(c.unreadCount)) return Math.max(0, c.unreadCount);
  return Math.max(0, (c.lastSeq || 0) - (c.agentReadSeq || 0));
}

/** The agents read up to `seq`: nothing is unread at the end; else ask the server. */
function agentsRead(c, seq) {
  c.agentReadSeq = Math.max(c.agentReadSeq || 0, seq);
  if (c.agentReadSeq >= (c.lastSeq || 0)) {
    c.unreadCount = 0;
    return;
  }
  api(sitePath(`/conversations/${encodeURIComponent(c.conversationId)}`))
    .then((fresh) => fresh && applyConversation(fresh))
    .catch(() => {});
}

function assigneeName(c) {
  if (!c.assignee) return '';
  if (state.me && c.assignee.agentId === state.me.agentId) return 'Me';
  return c.assignee.name || 'An agent';
}

function contactTitle(contact) {
  if (!contact) return 'Unknown customer';
  const attrs = contact.attributes || {};
  return attrs.name || attrs.alias || contact.identity || 'Customer';
}

function activityTime(c) {
  return Date.parse((c.lastMessage && c.lastMessage.createdAt) || c.updatedAt || c.createdAt) || 0;
}

function renderInbox() {
  const shown = [...conversations.values()].filter(matchesFilter).sort((a, b) => activityTime(b) - activityTime(a));
  // keep keyboard focus on the same conversation across re-renders
  const focused = ui.list.contains(document.activeElement) ? document.activeElement.dataset.conversationId : null;
  clear(ui.list);
  for (const c of shown) ui.list.append(renderInboxItem(c));
  if (focused) {
    const again = ui.list.querySelector(`[data-conversation-id="${CSS.escape(focused)}"]`);
    if (again) again.focus();
  }
  ui.inboxEmpty.hidden = shown.length > 0;
  const kind = state.filter.preview ? 'preview ' : '';
  ui.inboxEmpty.textContent = `No ${state.filter.status} ${kind}conversations.`;
  const totalUnread = shown.reduce((n, c) => n + unreadOf(c), 0);
  document.title = totalUnread > 0 ? `(${totalUnread}) Confidant — Agent console` : 'Confidant — Agent console';
}

function renderInboxItem(c) {
  const unread = unreadOf(c);
  const last = c.lastMessage;
  const lastText = last ? `${last.sender && last.sender.type === 'agent' ? 'You: ' : ''}${last.body}` : 'No messages yet';
  const button = h(
    'button',
    {
      type: 'button',
      class: 'conv-item',
      'data-testid': 'conversation-item',
      'data-conversation-id': c.conversationId,
      'data-unread': unread,
      'aria-current': view && view.id === c.conversationId ? 'true' : null,
    },
    h('span', { class: `who${unread ? ' unread' : ''}`, text: contactTitle(c.contact) }),
    h('span', { class: 'when', text: formatTime(last ? last.createdAt : c.updatedAt || c.createdAt) }),
    h('span', { class: 'preview-text', text: lastText.slice(0, 140) }),
    unread ? h('span', { class: 'badge', 'data-testid': 'unread-count', 'aria-label': `${unread} unread`, text: unread }) : h('span'),
    h('span', { class: 'identity', text: c.contact ? c.contact.identity : '' }),
    h('span', { class: 'messenger-label small', 'data-testid': 'messenger-label', text: messengerLabel(c) }),
    c.assignee ? h('span', { class: 'assignee-label small', 'data-testid': 'assignee-label', text: `→ ${assigneeName(c)}` }) : null,
  );
  button.addEventListener('click', () => selectConversation(c.conversationId));
  return h('li', {}, button);
}

/** Which messenger a conversation came from: its name, "(deleted)" once it was deleted. */
function messengerLabel(c) {
  const m = c.messenger;
  const name = (m && m.name) || state.messengers.get(c.messengerId) || 'Messenger';
  return m && m.deleted ? `${name} (deleted)` : name;
}

/** The site's messengers: the conversations' labels, and a filter when there is more than one. */
async function loadMessengers() {
  try {
    const data = await api(sitePath('/messengers'));
    state.messengers = new Map(((data && data.messengers) || []).map((m) => [m.messengerId, m.name]));
  } catch {
    state.messengers = new Map();
  }
  const keep = state.filter.messengerId;
  clear(ui.messengerFilter);
  ui.messengerFilter.append(h('option', { value: '', text: 'All messengers' }));
  for (const [id, name] of state.messengers) ui.messengerFilter.append(h('option', { value: id, text: name, selected: id === keep }));
  ui.messengerFilterRow.hidden = state.messengers.size < 2 && !keep;
  renderInbox();
}

/** The conversation on screen left the list (a filter changed): show the list's first one. */
function showFirstIfStale() {
  const c = viewConversation();
  if (view && c && matchesFilter(c)) return;
  const first = ui.list.querySelector('.conv-item');
  if (first) selectConversation(first.dataset.conversationId);
  else clearView();
}

function clearView() {
  thread.reset();
  view = null;
  viewSnapshot = null;
  ui.view.hidden = true;
  ui.noSelection.hidden = false;
  panel.hide();
  renderInbox();
}

function setFilter(patch) {
  state.filter = { ...state.filter, ...patch };
  state.pickAfterLoad = true;
  ui.tabOpen.setAttribute('aria-pressed', String(state.filter.status === 'open'));
  ui.tabClosed.setAttribute('aria-pressed', String(state.filter.status === 'closed'));
  ui.filterMine.setAttribute('aria-pressed', String(state.filter.assignee === 'me'));
  ui.filterUnassigned.setAttribute('aria-pressed', String(state.filter.assignee === 'none'));
  ui.filterAll.setAttribute('aria-pressed', String(state.filter.assignee === 'all'));
  conversations.clear();
  renderInbox();
  loadInbox();
}

// ---------------------------------------------------------------------------------------------
// Conversation view

async function selectConversation(conversationId, { focusItem = false } = {}) {
  const c = conversations.get(conversationId);
  if (!c) return;
  thread.reset();
  view = { id: conversationId, loading: true };
  viewSnapshot = c;
  renderInbox();
  ui.noSelection.hidden = true;
  ui.view.hidden = false;
  renderHeader(c);
  if (focusItem) {
    const item = ui.list.querySelector(`[data-conversation-id="${CSS.escape(conversationId)}"]`);
    if (item) item.focus();
  }
  panel.show(c.contact, conversationId);
  ui.messagesLoading.hidden = false;
  try {
    await loadViewMessages(view, 0);
  } catch (err) {
    if (view && view.id === conversationId) reportError(err);
  } finally {
    if (view && view.id === conversationId) {
      view.loading = false;
      ui.messagesLoading.hidden = true;
      thread.scrollToBottom(true);
      markReadIfVisible();
    }
  }
  if (view && view.id === conversationId && c.status === 'open' && !focusItem) ui.reply.focus();
}

function loadViewMessages(v, afterSeq) {
  return readMessages(
    (after, limit) => api(sitePath(`/conversations/${encodeURIComponent(v.id)}/messages?after=${after}&limit=${limit}`)),
    afterSeq,
    (m) => showMessage(m, false),
    () => view !== v,
  );
}

function renderHeader(c) {
  const contact = c.contact || {};
  ui.contactName.textContent = contactTitle(contact);
  ui.contactIdentity.textContent = contact.identity || '';
  ui.previewTag.hidden = !c.preview;
  ui.statusTag.textContent = c.status === 'closed' ? 'Closed' : 'Open';
  ui.messengerTag.textContent = messengerLabel(c);
  // Offline notice (CONTRACT §10): the customer was emailed that a reply waits.
  ui.notifiedTag.hidden = !c.notifiedAt;
  ui.notifiedTag.textContent = c.notifiedAt ? `Customer notified by email at ${formatDateTime(c.notifiedAt)}` : '';
  ui.notifiedTag.title = c.notifiedAt ? new Date(c.notifiedAt).toISOString() : '';
  fillAttributes(ui.contactAttributes, contact);
  renderAssignee(c);
  const closed = c.status === 'closed';
  ui.closeButton.hidden = closed;
  ui.reopenButton.hidden = !closed;
  ui.closedNote.hidden = !closed;
  ui.replyForm.hidden = closed;
  updateReplyButton();
}

// ---------------------------------------------------------------------------------------------
// Assignment (CONTRACT §16): agents take or let go of a conversation; admins assign anyone.

function isAdmin() {
  return !state.me || state.me.role === 'admin';
}

function renderAssignee(c) {
  const mine = Boolean(c.assignee && state.me && c.assignee.agentId === state.me.agentId);
  ui.assigneeTag.textContent = c.assignee ? (mine ? `Me (${c.assignee.name})` : c.assignee.name) : 'Nobody';
  ui.assigneeTag.dataset.agentId = c.assignee ? c.assignee.agentId : '';
  ui.assignMe.hidden = !state.me || mine;
  ui.unassign.hidden = !c.assignee || !(mine || isAdmin());
  const canPick = isAdmin() && state.agents.length > 0;
  ui.assignTo.hidden = !canPick;
  if (canPick) {
    clear(ui.assignTo);
    ui.assignTo.append(h('option', { value: '', text: 'Assign to…' }));
    for (const a of state.agents) {
      ui.assignTo.append(h('option', { value: a.agentId, text: a.name || a.email, selected: Boolean(c.assignee && c.assignee.agentId === a.agentId) }));
    }
  }
}

async function assignTo(agentId) {
  const c = viewConversation();
  if (!c) return;
  for (const b of [ui.assignMe, ui.unassign, ui.assignTo]) b.disabled = true;
  try {
    const updated = await api(sitePath(`/conversations/${encodeURIComponent(c.conversationId)}/assign`), { method: 'POST', body: { agentId } });
    applyConversation(updated);
  } catch (err) {
    reportError(err);
  } finally {
    for (const b of [ui.assignMe, ui.unassign, ui.assignTo]) b.disabled = false;
  }
}

async function loadAgents() {
  state.agents = [];
  if (!isAdmin()) return;
  try {
    const data = await api(sitePath('/agents'));
    state.agents = ((data && data.agents) || []).filter((a) => !a.disabled);
  } catch {
    state.agents = []; // not allowed: only "me"
  }
  const c = viewConversation();
  if (c) renderAssignee(c);
}

async function loadCannedReplies() {
  try {
    const data = await api(sitePath('/canned-replies'));
    canned.setReplies((data && data.cannedReplies) || []);
  } catch {
    canned.setReplies([]);
  }
}

/** A conversation this page has not seen, just opened: alert as the agent chose. */
const alerted = new Set();
function maybeAlertNew(c) {
  if (!c || c.status !== 'open' || c.preview || alerted.has(c.conversationId)) return;
  alerted.add(c.conversationId);
  const age = Date.now() - (Date.parse(c.createdAt) || 0);
  if (age > 120000) return;
  alerts.newConversation('New conversation', contactTitle(c.contact), () => {
    if (conversations.has(c.conversationId)) selectConversation(c.conversationId);
  });
}

/** Show a message of the conversation on screen (idempotent by messageId). */
function showMessage(m, live) {
  if (!view || m.conversationId !== view.id) return;
  thread.show(m, { live });
}

function markReadIfVisible() {
  const c = viewConversation();
  if (!view || view.loading || !c || document.visibilityState !== 'visible') return;
  const seq = thread.lastSeq(view.id);
  if (seq <= (c.agentReadSeq || 0)) return;
  agentsRead(c, seq);
  renderInbox();
  api(sitePath(`/conversations/${encodeURIComponent(c.conversationId)}/read`), { method: 'POST', body: { seq } }).catch((err) => {
    if (err instanceof ApiError && err.status === 401) sessionEnded();
  });
}

/** "Close conversation" asks first (a modal dialog; Escape or Cancel keep it open). */
function askClose() {
  if (!viewConversation()) return;
  ui.closeDialog.showModal();
  ui.closeConfirm.focus();
}

async function closeConversation() {
  ui.closeDialog.close();
  const c = viewConversation();
  if (!c) return;
  // Where focus goes after: the next conversation of the list (the closed one leaves it).
  const items = [...ui.list.querySelectorAll('.conv-item')];
  const at = items.findIndex((b) => b.dataset.conversationId === c.conversationId);
  const next = items[at + 1] || items[at - 1] || null;
  const nextId = next && next.dataset.conversationId !== c.conversationId ? next.dataset.conversationId : null;
  ui.closeButton.disabled = true;
  try {
    const updated = await api(sitePath(`/conversations/${encodeURIComponent(c.conversationId)}/close`), { method: 'POST' });
    applyConversation(updated || { ...c, status: 'closed' });
    showUndo(c.conversationId);
    if (nextId && conversations.has(nextId) && matchesFilter(conversations.get(nextId))) {
      await selectConversation(nextId, { focusItem: true });
    } else {
      clearView();
      ui.tabOpen.focus();
    }
  } catch (err) {
    reportError(err);
  } finally {
    ui.closeButton.disabled = false;
  }
}

/** Reopen a closed conversation (the toast's Undo, or the closed view's button) and show it. */
async function reopenConversation(conversationId) {
  hideToast();
  ui.reopenButton.disabled = true;
  try {
    const updated = await api(sitePath(`/conversations/${encodeURIComponent(conversationId)}/reopen`), { method: 'POST' });
    applyConversation(updated);
    if (state.filter.status !== 'open') {
      setFilter({ status: 'open' });
      applyConversation(updated); // the list reloads; it is known meanwhile
    }
    await selectConversation(conversationId);
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) showError('This conversation cannot be reopened: the customer has opened a new one since. Answer there.');
    else reportError(err);
  } finally {
    ui.reopenButton.disabled = false;
  }
}

const UNDO_MS = 10000;
let toastTimer = null;
let toastFor = null;
function showUndo(conversationId) {
  clearTimeout(toastTimer);
  toastFor = conversationId;
  ui.toastText.textContent = 'Conversation closed —';
  ui.toast.hidden = false;
  toastTimer = setTimeout(hideToast, UNDO_MS);
}

function hideToast() {
  clearTimeout(toastTimer);
  toastFor = null;
  ui.toast.hidden = true;
}

/** Merge a conversation object (from close, or a live event) into the inbox and the view. */
function applyConversation(updated) {
  if (!updated || !updated.conversationId) return;
  const prev = conversations.get(updated.conversationId) || (viewSnapshot && viewSnapshot.conversationId === updated.conversationId ? viewSnapshot : null);
  const merged = { ...(prev || {}), ...updated, contact: updated.contact || (prev && prev.contact) };
  if (!prev && merged.contact) maybeAlertNew(merged);
  conversations.set(merged.conversationId, merged);
  if ('status' in updated || 'assignee' in updated) panel.changed(merged);
  if (view && view.id === merged.conversationId) {
    viewSnapshot = merged;
    renderHeader(merged);
  }
  renderInbox();
}

// ---------------------------------------------------------------------------------------------
// Replying

function updateReplyButton() {
  const n = charLength(ui.reply.value);
  const ready = files.ids().length > 0;
  ui.replySend.disabled = files.busy() || (!ui.reply.value.trim() && !ready) || n > MAX_BODY_CHARS;
}

function submitReply() {
  const body = ui.reply.value.trim();
  const c = viewConversation();
  const attached = files.busy() ? [] : files.items.filter((i) => i.state === 'done').map((i) => i.result);
  if ((!body && !attached.length) || files.busy() || !view || !c) return;
  if (charLength(body) > MAX_BODY_CHARS) {
    showError(`A message can be at most ${MAX_BODY_CHARS.toLocaleString()} characters.`);
    return;
  }
  ui.reply.value = '';
  files.takeSent();
  updateReplyButton();
  const v = view;
  const clientMessageId = uuid();
  const path = sitePath(`/conversations/${encodeURIComponent(v.id)}/messages`);
  const send = { clientMessageId, body };
  if (attached.length) send.attachmentIds = attached.map((a) => a.attachmentId);
  const delivery = new Delivery({
    clientMessageId,
    attempt: () => api(path, { method: 'POST', body: send }),
    onState: (st, detail) => onDeliveryState(v, clientMessageId, st, detail),
  });
  thread.addPending(clientMessageId, body, delivery, attached);
  delivery.start();
}

function onDeliveryState(v, clientMessageId, st, detail) {
  if (view !== v) return;
  switch (st) {
    case DeliveryState.SENDING:
      thread.pendingState(clientMessageId, st, 'Sending…');
      break;
    case DeliveryState.RETRYING:
      thread.pendingState(clientMessageId, st, 'Not sent yet — retrying…', { retry: 'Retry' });
      break;
    case DeliveryState.WAITING_AUTH:
      thread.pendingState(clientMessageId, st, 'Not sent: your session ended.', { failed: true });
      sessionEnded();
      break;
    case DeliveryState.FAILED:
      thread.pendingState(clientMessageId, st, `Not sent: ${detail.error}`, { failed: true, retry: 'Retry' });
      break;
    case DeliveryState.SENT:
      if (detail.message) {
        showMessage({ ...detail.message, clientMessageId, sender: detail.message.sender || { type: 'agent' } }, false);
        const c = viewConversation();
        if (c) {
          c.lastMessage = detail.message;
          c.lastSeq = Math.max(c.lastSeq || 0, detail.message.seq);
          renderInbox();
        }
        markReadIfVisible();
      }
      break;
    default:
      break;
  }
}

function maybeSendTyping() {
  const c = viewConversation();
  if (c && c.status === 'open') thread.sendTyping(state.socket, c.conversationId);
}

// ---------------------------------------------------------------------------------------------
// Live updates

function onLiveMessage(m) {
  if (!m || !m.conversationId) return;
  const c = conversations.get(m.conversationId) || (viewSnapshot && viewSnapshot.conversationId === m.conversationId ? viewSnapshot : null);
  if (c) {
    if (!c.lastMessage || m.seq >= (c.lastMessage.seq || 0)) c.lastMessage = m;
    const isNew = m.seq > (c.lastSeq || 0);
    if (isNew && m.sender && m.sender.type === 'contact' && m.seq > (c.agentReadSeq || 0)) c.unreadCount = unreadOf(c) + 1;
    c.lastSeq = Math.max(c.lastSeq || 0, m.seq);
    c.updatedAt = m.createdAt || c.updatedAt;
    if (!conversations.has(c.conversationId)) conversations.set(c.conversationId, c);
    renderInbox();
  } else {
    scheduleInboxReload(); // a conversation we do not know yet: fetch the list
  }
  showMessage(m, true);
  if (view && view.id === m.conversationId) markReadIfVisible();
}

function onSocketEvent(msg) {
  switch (msg.type) {
    case 'message':
      onLiveMessage(msg.message);
      break;
    case 'conversation':
      if (msg.conversation) {
        if (!msg.conversation.contact && !conversations.has(msg.conversation.conversationId)) {
          // A new conversation (its frame has no contact): fetch it as agents see it.
          api(sitePath(`/conversations/${encodeURIComponent(msg.conversation.conversationId)}`))
            .then((fresh) => applyConversation(fresh))
            .catch(() => scheduleInboxReload());
        } else applyConversation(msg.conversation);
      }
      break;
    case 'typing':
      if (view && msg.conversationId === view.id && msg.sender && msg.sender.type === 'contact') {
        const c = viewConversation();
        thread.showTyping(msg.sender.name || contactTitle(c && c.contact));
      }
      break;
    case 'read': {
      const c = conversations.get(msg.conversationId);
      if (!c || !msg.reader || !Number.isInteger(msg.seq)) break;
      if (msg.reader.type === 'contact') c.contactReadSeq = Math.max(c.contactReadSeq || 0, msg.seq);
      else if (msg.seq > (c.agentReadSeq || 0)) agentsRead(c, msg.seq);
      renderInbox();
      if (view && view.id === c.conversationId) thread.updateSeen();
      break;
    }
    case 'notified':
      if (msg.conversationId && msg.notifiedAt) {
        const known = conversations.get(msg.conversationId) || (viewSnapshot && viewSnapshot.conversationId === msg.conversationId);
        if (known) applyConversation({ conversationId: msg.conversationId, notifiedAt: msg.notifiedAt });
      }
      break;
    case 'resync':
      resumeView();
      loadInbox();
      break;
    default:
      break;
  }
}

function resumeView() {
  if (view && state.socket) state.socket.send({ type: 'resume', conversationId: view.id, afterSeq: thread.lastSeq(view.id) });
}

function onSocketReady(msg, reconnected) {
  if (ui.error.dataset.kind === 'live') setNotice(ui.error, '');
  if (!reconnected) return;
  resumeView();
  loadInbox();
}

async function onSocketAuthFailed(reason = '') {
  // 4401, or no ticket: logged out (here or elsewhere) or the session expired, or a ticket
  // expired before it was used. The session decides: ended → sign-in page; else reconnect
  // (with backoff; each attempt fetches a fresh ticket).
  try {
    await api('/api/v1/auth/me');
    if (state.active && state.socket) state.socket.scheduleReconnect();
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
      noteEnded(reason);
      sessionEnded();
    } else setTimeout(onSocketAuthFailed, 5000);
  }
}

function startLive() {
  state.socket = new LiveSocket({
    url: socketUrl('/api/v1/agent/ws'),
    onEvent: onSocketEvent,
    onReady: onSocketReady,
    onState: (s) => liveState.show(s),
    onAuthFailed: onSocketAuthFailed,
    // A single-use ticket per (re)connect: the page never holds the session token itself.
    fetchToken: socketTicket,
  });
  state.socket.start();
}

// ---------------------------------------------------------------------------------------------
// Session lifecycle

function enterApp(agent) {
  state.active = true;
  state.siteId = (agent && agent.siteId) || Number(defaultSiteId());
  ui.adminLink.hidden = Boolean(agent && agent.role !== 'admin');
  ui.adminLink.href = `/admin/?siteId=${encodeURIComponent(state.siteId)}`;
  state.me = agent && agent.agentId ? agent : null;
  // The operator is nobody: "Mine" means nothing to it.
  ui.filterMine.hidden = !state.me;
  if (!state.me && state.filter.assignee === 'me') state.filter.assignee = 'all';
  loadAgents();
  loadMessengers();
  loadCannedReplies();
  loadInbox();
  startLive();
}

function teardown() {
  state.active = false;
  if (state.socket) state.socket.close();
  state.socket = null;
  clearTimeout(state.reloadTimer);
  thread.reset();
  view = null;
  viewSnapshot = null;
  conversations.clear();
  clear(ui.list);
  ui.view.hidden = true;
  ui.noSelection.hidden = false;
  panel.hide();
  canned.setReplies([]);
  hideToast();
  state.messengers = new Map();
  state.me = null;
  state.agents = [];
  document.title = 'Confidant — Agent console';
}

function sessionEnded() {
  page.sessionEnded();
}

function wire() {
  ui.tabOpen.addEventListener('click', () => setFilter({ status: 'open' }));
  ui.tabClosed.addEventListener('click', () => setFilter({ status: 'closed' }));
  ui.previewToggle.addEventListener('change', () => setFilter({ preview: ui.previewToggle.checked }));
  ui.filterMine.addEventListener('click', () => setFilter({ assignee: 'me' }));
  ui.filterUnassigned.addEventListener('click', () => setFilter({ assignee: 'none' }));
  ui.filterAll.addEventListener('click', () => setFilter({ assignee: 'all' }));
  ui.assignMe.addEventListener('click', () => state.me && assignTo(state.me.agentId));
  ui.unassign.addEventListener('click', () => assignTo(null));
  ui.assignTo.addEventListener('change', () => {
    if (ui.assignTo.value) assignTo(ui.assignTo.value);
  });
  ui.closeButton.addEventListener('click', askClose);
  ui.closeConfirm.addEventListener('click', closeConversation);
  ui.closeCancel.addEventListener('click', () => {
    ui.closeDialog.close();
    ui.closeButton.focus();
  });
  ui.toastUndo.addEventListener('click', () => toastFor && reopenConversation(toastFor));
  ui.reopenButton.addEventListener('click', () => view && reopenConversation(view.id));
  ui.messengerFilter.addEventListener('change', () => setFilter({ messengerId: ui.messengerFilter.value }));
  // The canned-reply picker's keys come before the composer's Enter-to-send.
  canned = new CannedPicker(ui.reply, ui.cannedList, updateReplyButton);
  wireComposer(ui.replyForm, ui.reply, submitReply);
  ui.replyAttach.addEventListener('click', () => ui.replyAttachInput.click());
  ui.replyAttachInput.addEventListener('change', () => {
    files.add([...ui.replyAttachInput.files]);
    ui.replyAttachInput.value = '';
  });
  wireDrop(ui.replyForm, (picked) => files.add(picked));
  ui.reply.addEventListener('input', () => {
    updateReplyButton();
    if (ui.reply.value.trim()) maybeSendTyping();
  });
  document.addEventListener('visibilitychange', markReadIfVisible);
}

let canned = null;
const alerts = new Alerts(ui.notifyButton, ui.soundToggle);
const panel = new ContactPanel({
  get: (rest) => api(sitePath(rest)),
  open: (c) => openFromHistory(c),
  onError: reportError,
});

/** Open a conversation of the contact panel (a closed one reads as it was, no reply box). */
function openFromHistory(c) {
  const known = conversations.get(c.conversationId);
  if (!known) conversations.set(c.conversationId, c);
  selectConversation(c.conversationId);
}

wire();
const page = startAgentPage({ enter: enterApp, leave: teardown });
