// Site administration: messengers (Security tab, installation code, notifications) and agents.
import { h, $, $$, clear, setNotice, copyText } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError } from '../shared/format.js';
import { api, currentAgent } from '../shared/session.js';
import { startAgentPage, defaultSiteId } from '../shared/login.js';
import { showWebhooks, resetWebhooks } from './webhooks.js';
import { showCanned, resetCanned } from './canned.js';
import { showAudit, resetAudit } from './audit.js';
import { renderAgentRows } from './agents.js';
import { showSettings, resetSettings } from './settings.js';
import { showContacts, resetContacts } from './contacts.js';
import { resetTokenCheck, showTokenCheck } from './token-check.js';
import { showAppearance, hideAppearance } from './appearance.js';
import { clearFieldErrors, clearOwnError, markFields, showInvalid } from './fields.js';

const ui = {
  error: $('#app-error'),
  readonly: $('#readonly-note'),
  consoleLink: $('#console-link'),
  navMessengers: $('#nav-messengers'),
  navAgents: $('#nav-agents'),
  navWebhooks: $('#nav-webhooks'),
  webhooksSection: $('#webhooks-section'),
  navCanned: $('#nav-canned'),
  cannedSection: $('#canned-section'),
  navAudit: $('#nav-audit'),
  auditSection: $('#audit-section'),
  navContacts: $('#nav-contacts'),
  contactsSection: $('#contacts-section'),
  messengersSection: $('#messengers-section'),
  agentsSection: $('#agents-section'),
  messengerList: $('#messenger-list'),
  messengersEmpty: $('#messengers-empty'),
  messengersStatus: $('#messengers-status'),
  createForm: $('#create-messenger'),
  createName: $('#create-name'),
  createSubmit: $('#create-submit'),
  detail: $('#messenger-detail'),
  detailName: $('#detail-name'),
  detailId: $('#detail-id'),
  secretReveal: $('#secret-reveal'),
  secretValue: $('#secret-value'),
  secretCopy: $('#secret-copy'),
  secretDone: $('#secret-done'),
  secretNote: $('#secret-note'),
  tabSecurity: $('#tab-security'),
  tabInstall: $('#tab-install'),
  tabNotices: $('#tab-notices'),
  tabAppearance: $('#tab-appearance'),
  noticesPanel: $('#notices-panel'),
  noticesForm: $('#notices-form'),
  noticesSmtp: $('#notices-smtp'),
  noticesError: $('#notices-error'),
  noticesEnabled: $('#notices-enabled'),
  noticesAfter: $('#notices-after'),
  noticesSubject: $('#notices-subject'),
  noticesLink: $('#notices-link'),
  noticesSave: $('#notices-save'),
  noticesStatus: $('#notices-status'),
  noticesTestForm: $('#notices-test-form'),
  noticesTestTo: $('#notices-test-to'),
  noticesTestSend: $('#notices-test-send'),
  noticesTestStatus: $('#notices-test-status'),
  securityForm: $('#security-form'),
  securityError: $('#security-error'),
  securitySave: $('#security-save'),
  securityStatus: $('#security-status'),
  rolloverRunning: $('#rollover-running'),
  rolloverRunningText: $('#rollover-running-text'),
  rolloverEnd: $('#rollover-end'),
  rolloverConfirm: $('#rollover-confirm'),
  rolloverWarning: $('#rollover-warning'),
  rolloverSave: $('#rollover-save'),
  rolloverCancel: $('#rollover-cancel'),
  keepLabel: $('#secret-keep-label'),
  secretEntry: $('#secret-entry'),
  sharedToken: $('#sharedToken'),
  encoding: $('#encoding'),
  publicKey: $('#publicKey'),
  jwksUrl: $('#jwksUrl'),
  identityKey: $('#contactIdentityKey'),
  allowedUrls: $('#allowedUrls'),
  clockSkew: $('#clockSkewSeconds'),
  maxLifetime: $('#maxTokenLifetimeSeconds'),
  issuer: $('#issuer'),
  audience: $('#audience'),
  installPanel: $('#install-panel'),
  installCode: $('#install-code'),
  installCopy: $('#install-copy'),
  installStatus: $('#install-status'),
  agentsBody: $('#agents-body'),
  agentsEmpty: $('#agents-empty'),
  agentsNotice: $('#agents-notice'),
  navSettings: $('#nav-settings'),
  settingsSection: $('#settings-section'),
  agentForm: $('#agent-form'),
  agentError: $('#agent-error'),
  agentEmail: $('#agent-email'),
  agentNameInput: $('#agent-name-input'),
  agentPassword: $('#agent-password'),
  agentRole: $('#agent-role'),
  agentSubmit: $('#agent-submit'),
  agentStatus: $('#agent-status'),
  renameButton: $('#messenger-rename'),
  deleteButton: $('#messenger-delete'),
  renameForm: $('#rename-form'),
  renameName: $('#rename-name'),
  renameSave: $('#rename-save'),
  renameCancel: $('#rename-cancel'),
  messengerStatus: $('#messenger-status'),
  deleteDialog: $('#delete-messenger-dialog'),
  deleteName: $('#delete-messenger-name'),
  deleteInput: $('#delete-messenger-confirm-input'),
  deleteConfirm: $('#delete-messenger-confirm'),
  deleteCancel: $('#delete-messenger-cancel'),
  deleteError: $('#delete-messenger-error'),
};

const state = {
  siteId: null,
  canEdit: false,
  messengers: [],
  selectedId: null,
  /** the security as last read from the server, for the selected messenger */
  security: null,
  /** a PUT body waiting for the rollover choice (a change of key) */
  pendingSecurity: null,
};

/** The types the server recognises by signature (core's KNOWN_ATTACHMENT_TYPES), with names. */
const ATTACHMENT_TYPES = [
  ['image/png', 'PNG image'],
  ['image/jpeg', 'JPEG image'],
  ['image/gif', 'GIF image'],
  ['image/webp', 'WebP image'],
  ['image/heif', 'HEIF image'],
  ['image/avif', 'AVIF image'],
  ['application/pdf', 'PDF'],
  ['application/zip', 'ZIP archive'],
  ['application/vnd.openxmlformats-officedocument.wordprocessingml.document', 'Word (.docx)'],
  ['application/vnd.openxmlformats-officedocument.spreadsheetml.sheet', 'Excel (.xlsx)'],
  ['application/vnd.openxmlformats-officedocument.presentationml.presentation', 'PowerPoint (.pptx)'],
  ['application/vnd.oasis.opendocument.text', 'OpenDocument text'],
  ['application/vnd.oasis.opendocument.spreadsheet', 'OpenDocument spreadsheet'],
  ['audio/mpeg', 'MP3 audio'],
  ['audio/ogg', 'Ogg audio'],
  ['audio/x-wav', 'WAV audio'],
  ['video/mp4', 'MP4 video'],
  ['video/webm', 'WebM video'],
  ['video/quicktime', 'QuickTime video'],
];
const DEFAULT_ATTACHMENTS = { enabled: false, maxBytes: 10485760, allowedTypes: ['image/png', 'image/jpeg', 'application/pdf'] };

const DEFAULT_SECURITY = {
  validation: { method: 'sharedToken' }, // no sharedToken: the server generates one and shows it once
  contactIdentityKey: 'sub',
  allowedUrls: [],
  clockSkewSeconds: 60,
  maxTokenLifetimeSeconds: null,
  issuer: null,
  audience: null,
};

function sitePath(rest = '') {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}${rest}`;
}

function messengerPath(id, rest = '') {
  return sitePath(`/messengers/${encodeURIComponent(id)}${rest}`);
}

// ---------------------------------------------------------------------------------------------
// Errors: beside their fields (./fields.js), else in the form's notice.

function showFormError(form, notice, err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionEnded();
    return;
  }
  if (err instanceof ApiError && err.status === 400) {
    showInvalid(form, notice, err.message);
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    setNotice(notice, 'Only site admins can change this.');
    return;
  }
  setNotice(notice, describeError(err));
}

function reportError(err) {
  if (err instanceof ApiError && err.status === 401) {
    sessionEnded();
    return;
  }
  setNotice(ui.error, describeError(err));
}

// ---------------------------------------------------------------------------------------------
// Messengers

async function loadMessengers(selectId = state.selectedId) {
  try {
    const data = await api(sitePath('/messengers'));
    state.messengers = (data && data.messengers) || [];
    renderMessengerList();
    const target = state.messengers.find((m) => m.messengerId === selectId) || state.messengers[0];
    if (target && target.messengerId !== state.selectedId) selectMessenger(target.messengerId);
    else if (target) renderMessengerList();
    else ui.detail.hidden = true;
  } catch (err) {
    reportError(err);
  }
}

function renderMessengerList() {
  clear(ui.messengerList);
  for (const m of state.messengers) {
    const button = h(
      'button',
      {
        type: 'button',
        class: 'messenger-item',
        'data-testid': 'messenger-item',
        'data-messenger-id': m.messengerId,
        'aria-current': m.messengerId === state.selectedId ? 'true' : null,
      },
      h('span', { text: m.name }),
      h('span', { class: 'mono', text: m.messengerId }),
    );
    button.addEventListener('click', () => selectMessenger(m.messengerId));
    ui.messengerList.append(h('li', {}, button));
  }
  ui.messengersEmpty.hidden = state.messengers.length > 0;
}

async function selectMessenger(id, { revealSecret = null } = {}) {
  const messenger = state.messengers.find((m) => m.messengerId === id);
  if (!messenger) return;
  state.selectedId = id;
  renderMessengerList();
  ui.detail.hidden = false;
  ui.detailName.textContent = messenger.name;
  endRename();
  ui.messengerStatus.textContent = '';
  ui.messengersStatus.textContent = '';
  ui.detailId.textContent = messenger.messengerId;
  hideSecret();
  clearFieldErrors(ui.securityForm);
  setNotice(ui.securityError, '');
  ui.securityStatus.textContent = '';
  fillSecurityForm(messenger.security || DEFAULT_SECURITY);
  if (revealSecret) showSecret(revealSecret, 'Created with a generated shared token.');
  resetTokenCheck({ siteId: state.siteId, messengerId: id, canEdit: state.canEdit, onSessionEnded: sessionEnded });
  showTab('security');
  ui.installCode.value = '';
  try {
    // fetch the freshest copy (another admin may have changed it)
    const fresh = await api(messengerPath(id));
    if (state.selectedId !== id || !fresh) return;
    Object.assign(messenger, fresh);
    ui.detailName.textContent = fresh.name;
    if (!ui.securityForm.dataset.dirty) fillSecurityForm(fresh.security || DEFAULT_SECURITY);
  } catch (err) {
    reportError(err);
  }
}

async function createMessenger(event) {
  event.preventDefault();
  clearFieldErrors(ui.createForm);
  setNotice(ui.error, '');
  const name = ui.createName.value.trim();
  if (!name) {
    markFields(ui.createForm, null, [{ field: 'name', text: 'Please give the messenger a name.' }]);
    return;
  }
  ui.createSubmit.disabled = true;
  try {
    const created = await api(sitePath('/messengers'), { method: 'POST', body: { name, security: DEFAULT_SECURITY } });
    ui.createName.value = '';
    const secret = created && created.security && created.security.validation && created.security.validation.sharedToken;
    state.messengers.push(created);
    await selectMessenger(created.messengerId, { revealSecret: secret || null });
    loadMessengers(created.messengerId);
  } catch (err) {
    showFormError(ui.createForm, ui.error, err);
  } finally {
    ui.createSubmit.disabled = !state.canEdit;
  }
}

// ---------------------------------------------------------------------------------------------
// Rename and delete (docs/OPERATING.md, "Messengers")

function selectedMessenger() {
  return state.messengers.find((m) => m.messengerId === state.selectedId) || null;
}

function startRename() {
  const m = selectedMessenger();
  if (!m) return;
  clearFieldErrors(ui.renameForm);
  ui.renameName.value = m.name;
  ui.renameForm.hidden = false;
  ui.messengerStatus.textContent = '';
  ui.renameName.focus();
  ui.renameName.select();
}

function endRename() {
  ui.renameForm.hidden = true;
  clearFieldErrors(ui.renameForm);
}

async function saveRename(event) {
  event.preventDefault();
  const m = selectedMessenger();
  if (!m) return;
  clearFieldErrors(ui.renameForm);
  const name = ui.renameName.value.trim();
  if (!name) {
    markFields(ui.renameForm, null, [{ field: 'name', text: 'Please give the messenger a name.' }]);
    return;
  }
  ui.renameSave.disabled = true;
  try {
    const saved = await api(messengerPath(m.messengerId), { method: 'PATCH', body: { name } });
    m.name = (saved && saved.name) || name;
    ui.detailName.textContent = m.name;
    renderMessengerList();
    endRename();
    ui.messengerStatus.textContent = `Renamed to “${m.name}”.`;
    ui.renameButton.focus();
  } catch (err) {
    showFormError(ui.renameForm, ui.messengerStatus, err);
  } finally {
    ui.renameSave.disabled = !state.canEdit;
  }
}

function askDelete() {
  const m = selectedMessenger();
  if (!m) return;
  ui.deleteName.textContent = `“${m.name}”`;
  ui.deleteInput.value = '';
  ui.deleteConfirm.disabled = true;
  setNotice(ui.deleteError, '');
  ui.deleteDialog.showModal();
  ui.deleteInput.focus();
}

async function confirmDelete() {
  const m = selectedMessenger();
  if (!m || ui.deleteInput.value.trim() !== m.name.trim()) return;
  ui.deleteConfirm.disabled = true;
  try {
    await api(messengerPath(m.messengerId), { method: 'DELETE' });
    ui.deleteDialog.close();
    state.messengers = state.messengers.filter((x) => x.messengerId !== m.messengerId);
    state.selectedId = null;
    ui.detail.hidden = true;
    renderMessengerList();
    setNotice(ui.error, '');
    ui.messengersStatus.textContent = `The messenger “${m.name}” was deleted. Its conversations stay readable in the console.`;
    const first = ui.messengerList.querySelector('.messenger-item');
    if (first) first.focus();
    else ui.createName.focus();
  } catch (err) {
    ui.deleteConfirm.disabled = false;
    if (err instanceof ApiError && err.status === 401) sessionEnded();
    else if (err instanceof ApiError && err.status === 403) setNotice(ui.deleteError, 'Only site admins can delete a messenger.');
    else setNotice(ui.deleteError, describeError(err));
  }
}

// ---------------------------------------------------------------------------------------------
// Security tab

function selectedMethod() {
  const checked = ui.securityForm.querySelector('input[name="method"]:checked');
  return checked ? checked.value : 'sharedToken';
}

function selectedSecretMode() {
  const checked = ui.securityForm.querySelector('input[name="secretMode"]:checked');
  return checked ? checked.value : 'enter';
}

function setRadio(name, value) {
  const input = ui.securityForm.querySelector(`input[name="${name}"][value="${value}"]`);
  if (input) input.checked = true;
}

function fillSecurityForm(sec) {
  state.security = sec;
  delete ui.securityForm.dataset.dirty;
  const v = sec.validation || { method: 'sharedToken' };
  setRadio('method', v.method || 'sharedToken');
  const canKeep = v.method === 'sharedToken' && (v.sharedTokenSet === true || Boolean(v.sharedToken));
  ui.keepLabel.hidden = !canKeep;
  setRadio('secretMode', canKeep ? 'keep' : 'enter');
  ui.sharedToken.value = '';
  ui.encoding.value = v.encoding || 'text';
  ui.publicKey.value = v.method === 'publicKey' ? v.publicKey || '' : '';
  ui.jwksUrl.value = v.method === 'jwks' ? v.jwksUrl || '' : '';
  ui.identityKey.value = sec.contactIdentityKey || 'sub';
  ui.allowedUrls.value = (sec.allowedUrls || []).join('\n');
  ui.clockSkew.value = sec.clockSkewSeconds ?? 60;
  ui.maxLifetime.value = sec.maxTokenLifetimeSeconds ?? '';
  ui.issuer.value = sec.issuer || '';
  ui.audience.value = sec.audience || '';
  fillAttachments(sec.attachments || DEFAULT_ATTACHMENTS);
  updateMethodPanels();
  hideRolloverConfirm();
  showRunningRollover(sec.previousValidation);
}

// Rollover (CONTRACT §5): a change of key may keep the current one working for a while.

/** What signs with a validation of each method, in the admin's words. */
const KEY_WORDS = {
  sharedToken: 'shared token',
  publicKey: 'public key\u2019s private key',
  jwks: 'JWKS keys',
};

/** A moment as the admin's local date and time, in a <time> element that keeps the exact one. */
function localTime(ms) {
  const at = new Date(ms);
  return h('time', { datetime: at.toISOString(), 'data-testid': 'rollover-time' },
    at.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }));
}

function showRunningRollover(previous) {
  const running = previous && Date.parse(previous.until) > Date.now();
  ui.rolloverRunning.hidden = !running;
  ui.rolloverRunningText.replaceChildren();
  if (!running) return;
  ui.rolloverRunningText.append(
    h('strong', { text: 'Rollover running. ' }),
    `Contact JWTs signed with the previous ${KEY_WORDS[previous.method] || 'key'} are still accepted until `,
    localTime(Date.parse(previous.until)),
    '.',
  );
  ui.rolloverEnd.hidden = !state.canEdit;
}

/** Whether the form's validation verifies with another key than the saved one. */
function validationChanges(next, saved) {
  if (!saved || next.method !== saved.method) return true;
  if (next.method === 'sharedToken') return !next.keepSharedToken;
  if (next.method === 'publicKey') return next.publicKey.replace(/\s+/g, '') !== (saved.publicKey || '').replace(/\s+/g, '');
  return next.jwksUrl !== saved.jwksUrl;
}

function selectedRollover() {
  const checked = ui.securityForm.querySelector('input[name="rollover"]:checked');
  return checked ? Number(checked.value) : 0;
}

/** The warning before a change of key: what stops working, and when. */
function updateRolloverWarning() {
  const saved = (state.security && state.security.validation) || {};
  const seconds = selectedRollover();
  const words = KEY_WORDS[saved.method] || 'key';
  ui.rolloverWarning.replaceChildren(
    h('strong', { text: 'This changes the key that verifies your customers. ' }),
    `Pages that sign Contact JWTs with the current ${words} will be refused `,
    ...(seconds > 0 ? ['from ', localTime(Date.now() + seconds * 1000), '.'] : ['as soon as you save.']),
  );
  const previous = state.security && state.security.previousValidation;
  if (previous && Date.parse(previous.until) > Date.now()) {
    ui.rolloverWarning.append(` The rollover running now ends: the previous ${KEY_WORDS[previous.method] || 'key'} is refused from then on too.`);
  }
}

function showRolloverConfirm(body) {
  state.pendingSecurity = body;
  setRadio('rollover', '0');
  updateRolloverWarning();
  ui.rolloverConfirm.hidden = false;
  ui.securitySave.disabled = true;
  ui.securityForm.querySelector('input[name="rollover"]:checked').focus();
}

function hideRolloverConfirm() {
  state.pendingSecurity = null;
  ui.rolloverConfirm.hidden = true;
  ui.securitySave.disabled = !state.canEdit;
}

async function endRollover() {
  const id = state.selectedId;
  setNotice(ui.securityError, '');
  ui.rolloverEnd.disabled = true;
  try {
    const saved = await api(messengerPath(id, '/security/previous-validation'), { method: 'DELETE' });
    if (state.selectedId !== id || !saved) return;
    state.security = { ...state.security, previousValidation: saved.previousValidation };
    const messenger = state.messengers.find((m) => m.messengerId === id);
    if (messenger) messenger.security = state.security;
    showRunningRollover(saved.previousValidation);
    ui.securityStatus.textContent = 'The previous key is no longer accepted.';
  } catch (err) {
    showFormError(ui.securityForm, ui.securityError, err);
  } finally {
    ui.rolloverEnd.disabled = false;
  }
}

function fillAttachments(a) {
  $('#attachments-enabled').checked = Boolean(a.enabled);
  $('#attachments-max-mb').value = String(Math.round((a.maxBytes / (1024 * 1024)) * 1000) / 1000);
  const box = $('#attachments-types');
  box.replaceChildren();
  for (const [type, name] of ATTACHMENT_TYPES) {
    const input = h('input', { type: 'checkbox', value: type, name: 'attachmentType' });
    input.checked = (a.allowedTypes || []).includes(type);
    box.append(h('label', { class: 'check', title: type }, input, ` ${name}`));
  }
}

function readAttachments(errors) {
  const mb = Number($('#attachments-max-mb').value);
  const maxBytes = Math.round(mb * 1024 * 1024);
  if (!Number.isFinite(mb) || maxBytes < 1 || maxBytes > 26214400) errors.push({ field: 'attachments.maxBytes', text: 'Enter a size from 0.001 to 25 MB.' });
  const allowedTypes = [...document.querySelectorAll('input[name="attachmentType"]:checked')].map((i) => i.value);
  if (!allowedTypes.length) errors.push({ field: 'attachments.allowedTypes', text: 'Allow at least one type.' });
  return { enabled: $('#attachments-enabled').checked, maxBytes, allowedTypes };
}

function updateMethodPanels() {
  const method = selectedMethod();
  for (const name of ['sharedToken', 'publicKey', 'jwks']) $(`#panel-${name}`).hidden = method !== name;
  ui.secretEntry.hidden = selectedSecretMode() !== 'enter';
}

function parseIntegerField(input, field, { min, max, allowEmpty }) {
  const raw = input.value.trim();
  if (raw === '') {
    if (allowEmpty) return { value: null };
    return { error: { field, text: 'Please enter a number.' } };
  }
  if (!/^\d+$/.test(raw)) return { error: { field, text: 'Please enter a whole number of seconds.' } };
  const value = Number(raw);
  if (min !== undefined && value < min) return { error: { field, text: `Must be at least ${min}.` } };
  if (max !== undefined && value > max) return { error: { field, text: `Must be at most ${max}.` } };
  return { value };
}

/** Build the PUT body from the form; returns { body } or { errors: [{ field, text }, …] }. */
function readSecurityForm() {
  const errors = [];
  const method = selectedMethod();
  let validation;
  if (method === 'sharedToken') {
    const mode = selectedSecretMode();
    validation = { method, encoding: ui.encoding.value };
    if (mode === 'enter') {
      if (!ui.sharedToken.value) errors.push({ field: 'validation.sharedToken', text: 'Enter a secret, or choose "Generate a new secret".' });
      validation.sharedToken = ui.sharedToken.value;
    } else if (mode === 'keep') {
      validation.keepSharedToken = true; // server keeps the stored secret (see docs)
    }
    // mode "generate": no sharedToken field at all
  } else if (method === 'publicKey') {
    const pem = ui.publicKey.value.trim();
    if (!pem) errors.push({ field: 'validation.publicKey', text: 'Paste the public key in PEM format.' });
    validation = { method, publicKey: pem };
  } else {
    const url = ui.jwksUrl.value.trim();
    if (!url) errors.push({ field: 'validation.jwksUrl', text: 'Enter the URL of the JWKS.' });
    validation = { method, jwksUrl: url };
  }
  const skew = parseIntegerField(ui.clockSkew, 'clockSkewSeconds', { min: 0, max: 300, allowEmpty: false });
  const lifetime = parseIntegerField(ui.maxLifetime, 'maxTokenLifetimeSeconds', { min: 1, allowEmpty: true });
  if (skew.error) errors.push(skew.error);
  if (lifetime.error) errors.push(lifetime.error);
  const body = {
    validation,
    contactIdentityKey: ui.identityKey.value.trim() || 'sub',
    allowedUrls: ui.allowedUrls.value.split('\n').map((s) => s.trim()).filter(Boolean),
    clockSkewSeconds: skew.value,
    maxTokenLifetimeSeconds: lifetime.value,
    issuer: ui.issuer.value.trim() || null,
    audience: ui.audience.value.trim() || null,
    attachments: readAttachments(errors),
  };
  return errors.length ? { errors } : { body };
}

async function saveSecurity(event) {
  event.preventDefault();
  clearFieldErrors(ui.securityForm);
  setNotice(ui.securityError, '');
  ui.securityStatus.textContent = '';
  const { body, errors } = readSecurityForm();
  if (errors) {
    markFields(ui.securityForm, ui.securityError, errors);
    return;
  }
  // A change of key first says what stops working, and offers a rollover.
  if (state.security && validationChanges(body.validation, state.security.validation)) {
    showRolloverConfirm(body);
    return;
  }
  await putSecurity(body);
}

async function putSecurity(body) {
  const id = state.selectedId;
  ui.securitySave.disabled = true;
  ui.rolloverSave.disabled = true;
  ui.securityStatus.textContent = 'Saving…';
  try {
    const saved = await api(messengerPath(id, '/security'), { method: 'PUT', body });
    if (state.selectedId !== id) return;
    const secret = saved && saved.validation && saved.validation.sharedToken;
    const messenger = state.messengers.find((m) => m.messengerId === id);
    const stored = saved ? { ...saved, validation: { ...saved.validation, sharedToken: null, sharedTokenSet: saved.validation.method === 'sharedToken' } } : body;
    if (messenger) messenger.security = stored;
    fillSecurityForm(stored);
    ui.securityStatus.textContent = 'Saved. New settings apply to every authorize from now on.';
    if (secret) {
      const unexpected = body.validation.keepSharedToken ? 'The server generated a new secret: update your website backend.' : '';
      showSecret(secret, unexpected);
    }
  } catch (err) {
    ui.securityStatus.textContent = '';
    hideRolloverConfirm();
    showFormError(ui.securityForm, ui.securityError, err);
  } finally {
    ui.securitySave.disabled = !state.canEdit;
    ui.rolloverSave.disabled = false;
  }
}

function showSecret(secret, note = '') {
  ui.secretValue.value = secret;
  ui.secretNote.textContent = note;
  ui.secretReveal.hidden = false;
  ui.secretValue.focus();
  ui.secretValue.select();
}

function hideSecret() {
  ui.secretValue.value = '';
  ui.secretNote.textContent = '';
  ui.secretReveal.hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Installation code

function showTab(name) {
  ui.tabSecurity.setAttribute('aria-pressed', String(name === 'security'));
  ui.tabInstall.setAttribute('aria-pressed', String(name === 'install'));
  ui.tabNotices.setAttribute('aria-pressed', String(name === 'notices'));
  ui.tabAppearance.setAttribute('aria-pressed', String(name === 'appearance'));
  ui.securityForm.hidden = name !== 'security';
  showTokenCheck(name === 'security');
  ui.installPanel.hidden = name !== 'install';
  ui.noticesPanel.hidden = name !== 'notices';
  if (name === 'install') loadInstallCode();
  if (name === 'notices') loadNotices();
  if (name === 'appearance') {
    showAppearance({ siteId: state.siteId, messengerId: state.selectedId, canEdit: state.canEdit, onSessionEnded: sessionEnded });
  } else {
    hideAppearance();
  }
}

// ---------------------------------------------------------------------------------------------
// Notifications tab (offline notices by email)

function fillNoticesForm(n) {
  const email = (n && n.email) || {};
  ui.noticesEnabled.checked = Boolean(email.enabled);
  ui.noticesAfter.value = email.afterSeconds ?? 300;
  ui.noticesSubject.value = email.subject || 'You have a new secure message';
  ui.noticesLink.value = email.linkUrl || '';
  ui.noticesSmtp.hidden = !n || n.smtpConfigured !== false;
}

async function loadNotices() {
  const id = state.selectedId;
  clearFieldErrors(ui.noticesForm);
  setNotice(ui.noticesError, '');
  ui.noticesStatus.textContent = 'Loading…';
  ui.noticesTestStatus.textContent = '';
  try {
    const n = await api(messengerPath(id, '/notifications'));
    if (state.selectedId !== id) return;
    fillNoticesForm(n);
    ui.noticesStatus.textContent = '';
  } catch (err) {
    ui.noticesStatus.textContent = '';
    if (err instanceof ApiError && err.status === 403) {
      setNotice(ui.noticesError, 'Only site admins can see and change notifications.');
      return;
    }
    reportError(err);
  }
}

/** A number input's value for the server: null when empty, the number, or else the text typed (which the server refuses by name). */
function numberOrText(input) {
  const raw = input.value.trim();
  if (raw === '' && !input.validity.badInput) return null;
  const n = Number(raw);
  return raw !== '' && Number.isFinite(n) ? n : raw;
}

async function saveNotices(event) {
  event.preventDefault();
  clearFieldErrors(ui.noticesForm);
  setNotice(ui.noticesError, '');
  const id = state.selectedId;
  // No checks here: the server names every bad field at once, for the API's users too.
  const body = {
    email: {
      enabled: ui.noticesEnabled.checked,
      afterSeconds: numberOrText(ui.noticesAfter),
      linkUrl: ui.noticesLink.value.trim() || null,
      subject: ui.noticesSubject.value.trim() || null,
    },
  };
  ui.noticesSave.disabled = true;
  ui.noticesStatus.textContent = 'Saving…';
  try {
    const saved = await api(messengerPath(id, '/notifications'), { method: 'PUT', body });
    if (state.selectedId !== id) return;
    fillNoticesForm(saved);
    ui.noticesStatus.textContent = 'Saved.';
  } catch (err) {
    ui.noticesStatus.textContent = '';
    showFormError(ui.noticesForm, ui.noticesError, err);
  } finally {
    ui.noticesSave.disabled = !state.canEdit;
  }
}

async function sendTestNotice(event) {
  event.preventDefault();
  const id = state.selectedId;
  const to = ui.noticesTestTo.value.trim();
  if (!to) {
    ui.noticesTestStatus.textContent = 'Enter the address to send the test to.';
    ui.noticesTestTo.focus();
    return;
  }
  ui.noticesTestSend.disabled = true;
  ui.noticesTestStatus.textContent = 'Sending…';
  try {
    await api(messengerPath(id, '/notifications/test'), { method: 'POST', body: { to } });
    ui.noticesTestStatus.textContent = `Sent to ${to}. The mail server accepted it.`;
  } catch (err) {
    ui.noticesTestStatus.textContent = `Not sent: ${err instanceof ApiError ? err.message : describeError(err)}`;
  } finally {
    ui.noticesTestSend.disabled = !state.canEdit;
  }
}

async function loadInstallCode() {
  const id = state.selectedId;
  ui.installStatus.textContent = 'Loading…';
  try {
    const data = await api(messengerPath(id, '/installation-code'));
    if (state.selectedId !== id) return;
    ui.installCode.value = (data && data.html) || '';
    ui.installStatus.textContent = '';
  } catch (err) {
    ui.installStatus.textContent = '';
    reportError(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Agents

async function loadAgents() {
  try {
    const data = await api(sitePath('/agents'));
    renderAgents((data && data.agents) || []);
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      clear(ui.agentsBody);
      ui.agentsEmpty.hidden = false;
      ui.agentsEmpty.textContent = 'Only site admins can see the list of agents.';
      return;
    }
    reportError(err);
  }
}

function renderAgents(agents) {
  renderAgentRows(ui.agentsBody, agents, {
    siteId: state.siteId,
    me: currentAgent(),
    canEdit: state.canEdit,
    notice: ui.agentsNotice,
    onChanged: loadAgents,
    onDelete: deleteAgent,
    onSessionEnded: sessionEnded,
  });
  ui.agentsEmpty.hidden = agents.length > 0;
  ui.agentsEmpty.textContent = 'No agents yet.';
}

async function addAgent(event) {
  event.preventDefault();
  clearFieldErrors(ui.agentForm);
  setNotice(ui.agentError, '');
  ui.agentStatus.textContent = '';
  const body = {
    email: ui.agentEmail.value.trim(),
    name: ui.agentNameInput.value.trim(),
    password: ui.agentPassword.value,
    role: ui.agentRole.value,
  };
  const missing = [];
  if (!body.email) missing.push({ field: 'email', text: 'Please enter an email address.' });
  if (!body.name) missing.push({ field: 'name', text: 'Please enter a name.' });
  if (!body.password) missing.push({ field: 'password', text: 'Please choose a password.' });
  else if ([...body.password].length < 12) missing.push({ field: 'password', text: 'The password needs at least 12 characters.' });
  if (missing.length) {
    markFields(ui.agentForm, ui.agentError, missing);
    return;
  }
  ui.agentSubmit.disabled = true;
  try {
    await api(sitePath('/agents'), { method: 'POST', body });
    ui.agentForm.reset();
    ui.agentStatus.textContent = `${body.name} can now sign in.`;
    loadAgents();
  } catch (err) {
    if (err instanceof ApiError && err.status === 409) {
      markFields(ui.agentForm, ui.agentError, [{ field: 'email', text: 'An agent with this email already exists.' }]);
    } else {
      showFormError(ui.agentForm, ui.agentError, err);
    }
  } finally {
    ui.agentSubmit.disabled = !state.canEdit;
  }
}

async function deleteAgent(agent) {
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Remove ${agent.name || agent.email}? They will no longer be able to sign in.`)) return;
  try {
    await api(sitePath(`/agents/${encodeURIComponent(agent.agentId)}`), { method: 'DELETE' });
    ui.agentStatus.textContent = `${agent.name || agent.email} was removed.`;
    loadAgents();
  } catch (err) {
    reportError(err);
  }
}

// ---------------------------------------------------------------------------------------------
// Navigation and session

function showSection(name) {
  ui.navMessengers.setAttribute('aria-pressed', String(name === 'messengers'));
  ui.navAgents.setAttribute('aria-pressed', String(name === 'agents'));
  ui.messengersSection.hidden = name !== 'messengers';
  ui.navWebhooks.setAttribute('aria-pressed', String(name === 'webhooks'));
  ui.agentsSection.hidden = name !== 'agents';
  ui.webhooksSection.hidden = name !== 'webhooks';
  if (name === 'agents') loadAgents();
  if (name === 'webhooks') showWebhooks({ siteId: state.siteId, canEdit: state.canEdit, onSessionEnded: sessionEnded });
  ui.navCanned.setAttribute('aria-pressed', String(name === 'canned'));
  ui.cannedSection.hidden = name !== 'canned';
  if (name === 'canned') showCanned({ siteId: state.siteId, canEdit: state.canEdit, onSessionEnded: sessionEnded });
  ui.navAudit.setAttribute('aria-pressed', String(name === 'audit'));
  ui.auditSection.hidden = name !== 'audit';
  if (name === 'audit') showAudit({ siteId: state.siteId, canEdit: state.canEdit, onSessionEnded: sessionEnded });
  ui.navSettings.setAttribute('aria-pressed', String(name === 'settings'));
  ui.settingsSection.hidden = name !== 'settings';
  if (name === 'settings') showSettings({ siteId: state.siteId, canEdit: state.canEdit, onSessionEnded: sessionEnded });
  ui.navContacts.setAttribute('aria-pressed', String(name === 'contacts'));
  ui.contactsSection.hidden = name !== 'contacts';
  if (name === 'contacts') showContacts({ siteId: state.siteId, canEdit: state.canEdit, onSessionEnded: sessionEnded });
}

function applyPermissions() {
  const editable = [ui.createForm, ui.securityForm, ui.agentForm, ui.noticesForm, ui.noticesTestForm, ui.renameForm];
  ui.renameButton.hidden = !state.canEdit;
  ui.deleteButton.hidden = !state.canEdit;
  for (const form of editable) {
    $$('input, textarea, select, button[type="submit"]', form).forEach((el) => {
      el.disabled = !state.canEdit;
    });
  }
  ui.readonly.hidden = state.canEdit;
}

function enterApp(agent) {
  state.siteId = (agent && agent.siteId) || Number(defaultSiteId());
  state.canEdit = !agent || agent.role === 'admin';
  ui.consoleLink.href = `/console/?siteId=${encodeURIComponent(state.siteId)}`;
  applyPermissions();
  showSection('messengers');
  loadMessengers();
}

function teardown() {
  state.messengers = [];
  state.selectedId = null;
  state.security = null;
  hideSecret();
  clear(ui.messengerList);
  clear(ui.agentsBody);
  ui.detail.hidden = true;
  resetWebhooks();
  resetCanned();
  resetAudit();
  resetSettings();
  resetContacts();
  resetTokenCheck();
}

function sessionEnded() {
  page.sessionEnded();
}

function wire() {
  ui.navMessengers.addEventListener('click', () => showSection('messengers'));
  ui.navAgents.addEventListener('click', () => showSection('agents'));
  ui.navWebhooks.addEventListener('click', () => showSection('webhooks'));
  ui.navCanned.addEventListener('click', () => showSection('canned'));
  ui.navAudit.addEventListener('click', () => showSection('audit'));
  ui.navSettings.addEventListener('click', () => showSection('settings'));
  ui.navContacts.addEventListener('click', () => showSection('contacts'));
  ui.createForm.addEventListener('submit', createMessenger);
  ui.securityForm.addEventListener('submit', saveSecurity);
  ui.securityForm.addEventListener('change', (e) => {
    if (e.target.name === 'method' || e.target.name === 'secretMode') updateMethodPanels();
    if (e.target.name === 'rollover') {
      updateRolloverWarning();
      return;
    }
    // Another edit after the warning: the next save asks again.
    if (state.pendingSecurity) hideRolloverConfirm();
    ui.securityForm.dataset.dirty = 'true';
  });
  ui.rolloverSave.addEventListener('click', () => {
    const body = state.pendingSecurity;
    if (!body) return;
    putSecurity({ ...body, rolloverSeconds: selectedRollover() });
  });
  ui.rolloverCancel.addEventListener('click', () => {
    hideRolloverConfirm();
    ui.securitySave.focus();
  });
  ui.rolloverEnd.addEventListener('click', endRollover);
  ui.securityForm.addEventListener('input', (e) => {
    if (e.target.name === 'rollover') return;
    if (state.pendingSecurity) hideRolloverConfirm();
    ui.securityForm.dataset.dirty = 'true';
  });
  ui.tabSecurity.addEventListener('click', () => showTab('security'));
  ui.tabInstall.addEventListener('click', () => showTab('install'));
  ui.tabNotices.addEventListener('click', () => showTab('notices'));
  ui.tabAppearance.addEventListener('click', () => showTab('appearance'));
  ui.noticesForm.addEventListener('submit', saveNotices);
  ui.noticesTestForm.addEventListener('submit', sendTestNotice);
  ui.installCopy.addEventListener('click', async () => {
    const ok = await copyText(ui.installCode.value, ui.installCode);
    ui.installStatus.textContent = ok ? 'Copied.' : 'Select the code and copy it with Ctrl+C (⌘C).';
  });
  ui.secretCopy.addEventListener('click', async () => {
    const ok = await copyText(ui.secretValue.value, ui.secretValue);
    ui.secretNote.textContent = ok ? 'Copied. Store it in your backend now; it will not be shown again.' : 'Select it and copy it with Ctrl+C (⌘C).';
  });
  ui.secretDone.addEventListener('click', hideSecret);
  ui.agentForm.addEventListener('submit', addAgent);
  ui.renameButton.addEventListener('click', startRename);
  ui.renameCancel.addEventListener('click', () => {
    endRename();
    ui.renameButton.focus();
  });
  ui.renameForm.addEventListener('submit', saveRename);
  ui.deleteButton.addEventListener('click', askDelete);
  ui.deleteInput.addEventListener('input', () => {
    const m = selectedMessenger();
    ui.deleteConfirm.disabled = !m || ui.deleteInput.value.trim() !== m.name.trim();
  });
  ui.deleteConfirm.addEventListener('click', confirmDelete);
  ui.deleteCancel.addEventListener('click', () => {
    ui.deleteDialog.close();
    ui.deleteButton.focus();
  });
  ui.deleteDialog.addEventListener('close', () => {
    if (!ui.detail.hidden) ui.deleteButton.focus();
  });
  // An error goes as soon as its field is changed (every admin form marks fields this way).
  document.addEventListener('input', clearOwnError);
  document.addEventListener('change', clearOwnError);
}

wire();
const page = startAgentPage({ enter: enterApp, leave: teardown });
