// The Webhooks tab of the site administration: list, create (the secret shown once), delete,
// the delivery log and "Send test event". Only site admins see it (the API answers 403 to agents).
import { h, $, $$, clear, setNotice, copyText } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError, formatDateTime } from '../shared/format.js';
import { api } from '../shared/session.js';
import { clearFieldErrors, showInvalid } from './fields.js';

const ui = {
  list: $('#webhook-list'),
  empty: $('#webhooks-empty'),
  form: $('#webhook-form'),
  error: $('#webhook-error'),
  url: $('#webhook-url'),
  includeBody: $('#webhook-include-body'),
  submit: $('#webhook-submit'),
  detail: $('#webhook-detail'),
  detailUrl: $('#webhook-detail-url'),
  detailEvents: $('#webhook-detail-events'),
  detailId: $('#webhook-detail-id'),
  secretReveal: $('#webhook-secret-reveal'),
  secretValue: $('#webhook-secret-value'),
  secretCopy: $('#webhook-secret-copy'),
  secretDone: $('#webhook-secret-done'),
  secretNote: $('#webhook-secret-note'),
  test: $('#webhook-test'),
  refresh: $('#webhook-refresh'),
  remove: $('#webhook-delete'),
  testResult: $('#webhook-test-result'),
  deliveries: $('#webhook-deliveries'),
  deliveriesEmpty: $('#webhook-deliveries-empty'),
};

const state = { siteId: null, canEdit: false, hooks: [], selectedId: null, onSessionEnded: () => {} };

function path(rest = '') {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}/webhooks${rest}`;
}

function report(err, notice = ui.error) {
  if (err instanceof ApiError && err.status === 401) {
    state.onSessionEnded();
    return;
  }
  if (err instanceof ApiError && err.status === 400) {
    showInvalid(ui.form, notice, err.message);
    return;
  }
  if (err instanceof ApiError && err.status === 409) {
    setNotice(notice, err.message);
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    setNotice(notice, 'Only site admins can manage webhooks.');
    return;
  }
  setNotice(notice, describeError(err));
}

/** Called when the Webhooks tab opens. */
export function showWebhooks({ siteId, canEdit, onSessionEnded }) {
  state.siteId = siteId;
  state.canEdit = canEdit;
  state.onSessionEnded = onSessionEnded;
  $$('input, button', ui.form).forEach((el) => {
    el.disabled = !canEdit;
  });
  load();
}

export function resetWebhooks() {
  state.hooks = [];
  state.selectedId = null;
  hideSecret();
  clear(ui.list);
  clear(ui.deliveries);
  ui.detail.hidden = true;
}

async function load(selectId = state.selectedId) {
  setNotice(ui.error, '');
  if (!state.canEdit) {
    clear(ui.list);
    ui.detail.hidden = true;
    ui.empty.hidden = false;
    ui.empty.textContent = 'Only site admins can see and manage webhooks.';
    return;
  }
  try {
    const data = await api(path());
    state.hooks = (data && data.webhooks) || [];
    renderList();
    const target = state.hooks.find((w) => w.webhookId === selectId) || state.hooks[0];
    if (target) select(target.webhookId);
    else ui.detail.hidden = true;
  } catch (err) {
    report(err);
  }
}

function renderList() {
  clear(ui.list);
  for (const w of state.hooks) {
    const button = h(
      'button',
      {
        type: 'button',
        class: 'messenger-item',
        'data-testid': 'webhook-item',
        'data-webhook-id': w.webhookId,
        'aria-current': w.webhookId === state.selectedId ? 'true' : null,
      },
      h('span', { class: 'webhook-url', text: w.url }),
      h('span', { class: 'mono', text: w.events.join(', ') }),
    );
    button.addEventListener('click', () => select(w.webhookId));
    ui.list.append(h('li', {}, button));
  }
  ui.empty.hidden = state.hooks.length > 0;
  ui.empty.textContent = 'No webhooks yet.';
}

function select(id, { secret = null } = {}) {
  const w = state.hooks.find((x) => x.webhookId === id);
  if (!w) return;
  if (state.selectedId !== id) {
    hideSecret();
    ui.testResult.textContent = '';
  }
  state.selectedId = id;
  renderList();
  ui.detail.hidden = false;
  ui.detailUrl.textContent = w.url;
  ui.detailEvents.textContent = `${w.events.join(', ')}${w.includeBody ? ' · with message text' : ''}`;
  ui.detailId.textContent = w.webhookId;
  if (secret) showSecret(secret);
  loadDeliveries();
}

async function loadDeliveries() {
  const id = state.selectedId;
  if (!id) return;
  try {
    const data = await api(path(`/${encodeURIComponent(id)}/deliveries`));
    if (state.selectedId !== id) return;
    renderDeliveries((data && data.deliveries) || []);
  } catch (err) {
    report(err);
  }
}

function result(d) {
  if (d.delivered) return h('span', { class: 'tag ok', text: `${d.status} delivered` });
  const text = d.status ? `HTTP ${d.status}` : d.error || 'failed';
  return h('span', { class: 'tag fail', text, title: d.error || null });
}

function renderDeliveries(list) {
  clear(ui.deliveries);
  for (const d of list) {
    ui.deliveries.append(
      h(
        'tr',
        { 'data-testid': 'webhook-delivery', 'data-delivered': String(d.delivered) },
        h('td', { text: formatDateTime(d.at) }),
        h('td', { class: 'mono', text: d.type }),
        h('td', {}, result(d)),
        h('td', { text: `${d.latencyMs} ms` }),
      ),
    );
  }
  ui.deliveriesEmpty.hidden = list.length > 0;
}

async function create(event) {
  event.preventDefault();
  clearFieldErrors(ui.form);
  setNotice(ui.error, '');
  const url = ui.url.value.trim();
  const events = $$('input[name="webhook-event"]:checked', ui.form).map((el) => el.value);
  // No checks here: the server names every bad field at once, for the API's users too.
  ui.submit.disabled = true;
  try {
    const created = await api(path(), { method: 'POST', body: { url, events, includeBody: ui.includeBody.checked } });
    ui.url.value = '';
    const { secret, ...hook } = created;
    state.hooks.push(hook);
    select(hook.webhookId, { secret });
  } catch (err) {
    report(err);
  } finally {
    ui.submit.disabled = !state.canEdit;
  }
}

async function removeSelected() {
  const w = state.hooks.find((x) => x.webhookId === state.selectedId);
  if (!w) return;
  // eslint-disable-next-line no-alert
  if (!window.confirm(`Delete the webhook to ${w.url}? Deliveries still queued for it are dropped.`)) return;
  try {
    await api(path(`/${encodeURIComponent(w.webhookId)}`), { method: 'DELETE' });
    state.selectedId = null;
    hideSecret();
    load();
  } catch (err) {
    report(err);
  }
}

async function sendTest() {
  const id = state.selectedId;
  ui.test.disabled = true;
  ui.testResult.textContent = 'Sending…';
  try {
    const r = await api(path(`/${encodeURIComponent(id)}/test`), { method: 'POST', body: {} });
    ui.testResult.textContent = r.delivered
      ? `Delivered: HTTP ${r.status} in ${r.latencyMs} ms.`
      : `Not delivered: ${r.status ? `HTTP ${r.status}` : r.error} (${r.latencyMs} ms).`;
    loadDeliveries();
  } catch (err) {
    ui.testResult.textContent = '';
    report(err);
  } finally {
    ui.test.disabled = false;
  }
}

function showSecret(secret) {
  ui.secretValue.value = secret;
  ui.secretNote.textContent = '';
  ui.secretReveal.hidden = false;
  ui.secretValue.focus();
  ui.secretValue.select();
}

function hideSecret() {
  ui.secretValue.value = '';
  ui.secretNote.textContent = '';
  ui.secretReveal.hidden = true;
}

ui.form.addEventListener('submit', create);
ui.test.addEventListener('click', sendTest);
ui.refresh.addEventListener('click', loadDeliveries);
ui.remove.addEventListener('click', removeSelected);
ui.secretCopy.addEventListener('click', async () => {
  const ok = await copyText(ui.secretValue.value, ui.secretValue);
  ui.secretNote.textContent = ok ? 'Copied. Store it with your receiver now; it will not be shown again.' : 'Select it and copy it with Ctrl+C (⌘C).';
});
ui.secretDone.addEventListener('click', hideSecret);
