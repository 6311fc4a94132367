// The Contacts section of the site administration (CONTRACT §14): search the site's contacts,
// show one, export everything kept of it (a JSON download) and erase it (a dialog that asks for
// the identity to be typed exactly). The retention policy is shown, and the operator may run
// the retention pass now. Export and erase are for site admins (the API answers 403 to agents).
import { h, $, clear, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError, formatDateTime } from '../shared/format.js';
import { api, isOperator } from '../shared/session.js';

const ui = {
  search: $('#contact-search'),
  query: $('#contact-query'),
  error: $('#contacts-error'),
  list: $('#contact-list'),
  empty: $('#contacts-empty'),
  detail: $('#contact-detail'),
  body: $('#contact-body'),
  erasedNote: $('#contact-erased-note'),
  identity: $('#contact-identity'),
  id: $('#contact-id'),
  created: $('#contact-created'),
  updated: $('#contact-updated'),
  attributes: $('#contact-attributes'),
  noAttributes: $('#contact-no-attributes'),
  exportButton: $('#contact-export'),
  eraseButton: $('#contact-erase'),
  status: $('#contact-status'),
  dialog: $('#erase-dialog'),
  dialogIdentity: $('#erase-identity-shown'),
  confirmInput: $('#erase-confirm-input'),
  confirm: $('#erase-confirm'),
  cancel: $('#erase-cancel'),
  eraseError: $('#erase-error'),
  policy: $('#retention-policy'),
  runRow: $('#retention-run-row'),
  run: $('#retention-run'),
  runResult: $('#retention-result'),
};

const state = { siteId: null, canEdit: false, found: [], selected: null, onSessionEnded: () => {} };

function sitePath(rest) {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}${rest}`;
}

function contactPath(id, rest = '') {
  return sitePath(`/contacts/${encodeURIComponent(id)}${rest}`);
}

function report(err, notice = ui.error) {
  if (err instanceof ApiError && err.status === 401) {
    state.onSessionEnded();
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    setNotice(notice, 'Only site admins can export or erase a contact.');
    return;
  }
  if (err instanceof ApiError && (err.status === 400 || err.status === 404)) {
    setNotice(notice, err.message);
    return;
  }
  setNotice(notice, describeError(err));
}

/** Called when the Contacts section opens. */
export function showContacts({ siteId, canEdit, onSessionEnded }) {
  state.siteId = siteId;
  state.canEdit = canEdit;
  state.onSessionEnded = onSessionEnded;
  ui.exportButton.disabled = !canEdit;
  ui.eraseButton.disabled = !canEdit;
  ui.runRow.hidden = !isOperator();
  loadPolicy();
  ui.query.focus();
}

export function resetContacts() {
  state.found = [];
  state.selected = null;
  clear(ui.list);
  ui.detail.hidden = true;
  ui.empty.hidden = true;
  ui.query.value = '';
  ui.runResult.textContent = '';
  setNotice(ui.error, '');
  if (ui.dialog.open) ui.dialog.close();
}

async function loadPolicy() {
  ui.policy.textContent = '';
  if (!state.canEdit) {
    ui.policy.textContent = 'Site admins see how long closed conversations are kept.';
    return;
  }
  try {
    const settings = await api(sitePath('/settings'));
    const days = settings ? settings.retentionDays : null;
    if (days === null || days === undefined) {
      ui.policy.textContent = 'Conversations are kept until someone erases them (no retention period is set).';
    } else if (days === 0) {
      ui.policy.textContent = 'Closed conversations are deleted at the next hourly pass.';
    } else {
      ui.policy.textContent = `Closed conversations are deleted ${days} day${days === 1 ? '' : 's'} after they were closed (checked hourly).`;
    }
  } catch (err) {
    report(err);
  }
}

async function search(event) {
  event.preventDefault();
  setNotice(ui.error, '');
  const text = ui.query.value.trim();
  if (!text) {
    setNotice(ui.error, 'Type part of an identity, a name or an email.');
    ui.query.focus();
    return;
  }
  try {
    const data = await api(`${sitePath('/contacts')}?query=${encodeURIComponent(text)}`);
    state.found = (data && data.contacts) || [];
    renderList();
    if (state.found.length === 1) select(state.found[0].contactId);
  } catch (err) {
    report(err);
  }
}

function label(c) {
  const a = c.attributes || {};
  return a.name || a.email || '';
}

function renderList() {
  clear(ui.list);
  for (const c of state.found) {
    const button = h(
      'button',
      {
        type: 'button',
        class: 'messenger-item',
        'data-testid': 'contact-item',
        'data-contact-id': c.contactId,
        'aria-current': state.selected && c.contactId === state.selected.contactId ? 'true' : null,
      },
      h('span', { text: c.identity }),
      h('span', { class: 'mono', text: label(c) || c.contactId }),
    );
    button.addEventListener('click', () => select(c.contactId));
    ui.list.append(h('li', {}, button));
  }
  ui.empty.hidden = state.found.length > 0;
  ui.empty.textContent = state.found.length >= 50 ? '' : 'No contact matches.';
}

function select(id) {
  const c = state.found.find((x) => x.contactId === id);
  if (!c) return;
  state.selected = c;
  renderList();
  ui.detail.hidden = false;
  ui.body.hidden = false;
  setNotice(ui.erasedNote, '');
  ui.status.textContent = '';
  ui.identity.textContent = c.identity;
  ui.id.textContent = c.contactId;
  ui.created.textContent = formatDateTime(c.createdAt);
  ui.updated.textContent = formatDateTime(c.updatedAt);
  clear(ui.attributes);
  const entries = Object.entries(c.attributes || {});
  for (const [k, v] of entries) {
    ui.attributes.append(h('tr', {}, h('td', { class: 'mono', text: k }), h('td', { text: v })));
  }
  ui.noAttributes.hidden = entries.length > 0;
}

async function exportSelected() {
  const c = state.selected;
  if (!c) return;
  ui.exportButton.disabled = true;
  ui.status.textContent = 'Preparing the export…';
  try {
    const data = await api(contactPath(c.contactId, '/export'));
    const blob = new Blob([JSON.stringify(data, null, 2)], { type: 'application/json' });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: `contact-${c.contactId}.json`, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    const n = (data.conversations || []).length;
    ui.status.textContent = `Exported: ${n} conversation${n === 1 ? '' : 's'}.`;
  } catch (err) {
    ui.status.textContent = '';
    report(err);
  } finally {
    ui.exportButton.disabled = !state.canEdit;
  }
}

function openErase() {
  const c = state.selected;
  if (!c) return;
  ui.dialogIdentity.textContent = c.identity;
  ui.confirmInput.value = '';
  ui.confirm.disabled = true;
  setNotice(ui.eraseError, '');
  ui.dialog.showModal();
  ui.confirmInput.focus();
}

async function eraseSelected() {
  const c = state.selected;
  if (!c || ui.confirmInput.value !== c.identity) return;
  ui.confirm.disabled = true;
  try {
    await api(contactPath(c.contactId), { method: 'DELETE' });
    ui.dialog.close();
    state.found = state.found.filter((x) => x.contactId !== c.contactId);
    state.selected = null;
    renderList();
    ui.body.hidden = true;
    setNotice(ui.erasedNote, `Erased ${c.identity}: the contact, its conversations, messages and files are gone, and it is signed out.`, 'ok');
  } catch (err) {
    report(err, ui.eraseError);
    ui.confirm.disabled = ui.confirmInput.value !== c.identity;
  }
}

async function runRetention() {
  ui.run.disabled = true;
  ui.runResult.textContent = 'Running…';
  try {
    const r = await api(sitePath('/retention/run'), { method: 'POST', body: {} });
    ui.runResult.textContent = `Deleted ${r.conversations} conversation(s), ${r.messages} message(s), ${r.attachments} file(s).`;
  } catch (err) {
    ui.runResult.textContent = '';
    if (err instanceof ApiError && err.status === 403) {
      setNotice(ui.error, 'Only the operator can run the retention pass on demand; it runs by itself every hour.');
    } else {
      report(err);
    }
  } finally {
    ui.run.disabled = false;
  }
}

ui.search.addEventListener('submit', search);
ui.exportButton.addEventListener('click', exportSelected);
ui.eraseButton.addEventListener('click', openErase);
ui.confirmInput.addEventListener('input', () => {
  ui.confirm.disabled = !state.selected || ui.confirmInput.value !== state.selected.identity;
});
ui.confirm.addEventListener('click', eraseSelected);
ui.cancel.addEventListener('click', () => ui.dialog.close());
ui.run.addEventListener('click', runRetention);
$('#erase-form').addEventListener('submit', (event) => {
  event.preventDefault();
  if (!ui.confirm.disabled) eraseSelected();
});
