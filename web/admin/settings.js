// The Site settings section of the site administration (CONTRACT §12): the idle timeout, the
// two-factor requirement and the retention period, read and saved as one.
import { $, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError } from '../shared/format.js';
import { api } from '../shared/session.js';

const ui = {
  form: $('#settings-form'),
  error: $('#settings-error'),
  idle: $('#settings-idle'),
  totp: $('#settings-totp'),
  retention: $('#settings-retention'),
  submit: $('#settings-submit'),
  status: $('#settings-status'),
};

const state = { siteId: null, canEdit: false, onSessionEnded: () => {} };

function path() {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}/settings`;
}

function report(err) {
  if (err instanceof ApiError && err.status === 401) {
    state.onSessionEnded();
    return;
  }
  if (err instanceof ApiError && err.status === 400) {
    setNotice(ui.error, err.message);
    return;
  }
  setNotice(ui.error, describeError(err));
}

function fill(s) {
  ui.idle.value = String(s.idleTimeoutMinutes);
  ui.totp.checked = Boolean(s.requireTotp);
  ui.retention.value = s.retentionDays === null || s.retentionDays === undefined ? '' : String(s.retentionDays);
}

/** Called when the Site settings section opens. */
export async function showSettings({ siteId, canEdit, onSessionEnded }) {
  state.siteId = siteId;
  state.canEdit = canEdit;
  state.onSessionEnded = onSessionEnded;
  setNotice(ui.error, '');
  ui.status.textContent = '';
  for (const el of [ui.idle, ui.totp, ui.retention, ui.submit]) el.disabled = !canEdit;
  try {
    fill(await api(path()));
  } catch (err) {
    if (err instanceof ApiError && err.status === 403) {
      setNotice(ui.error, 'Only site admins can see and change the site settings.', 'info');
      return;
    }
    report(err);
  }
}

export function resetSettings() {
  ui.form.reset();
  setNotice(ui.error, '');
  ui.status.textContent = '';
}

async function save(event) {
  event.preventDefault();
  setNotice(ui.error, '');
  ui.status.textContent = '';
  const idle = Number(ui.idle.value);
  if (!Number.isInteger(idle) || idle < 1 || idle > 1440) {
    setNotice(ui.error, 'The idle timeout is a whole number of minutes from 1 to 1,440.');
    ui.idle.focus();
    return;
  }
  const raw = ui.retention.value.trim();
  const retention = raw === '' ? null : Number(raw);
  if (retention !== null && (!Number.isInteger(retention) || retention < 0 || retention > 3650)) {
    setNotice(ui.error, 'The retention is a whole number of days from 0 to 3,650, or empty to keep conversations.');
    ui.retention.focus();
    return;
  }
  if (retention !== null) {
    // eslint-disable-next-line no-alert
    const ok = window.confirm(`Closed conversations older than ${retention} days will be deleted for good, with their messages and files. Continue?`);
    if (!ok) return;
  }
  ui.submit.disabled = true;
  try {
    const saved = await api(path(), {
      method: 'PUT',
      body: { idleTimeoutMinutes: idle, requireTotp: ui.totp.checked, retentionDays: retention },
    });
    fill(saved);
    ui.status.textContent = 'Saved.';
  } catch (err) {
    report(err);
  } finally {
    ui.submit.disabled = !state.canEdit;
  }
}

ui.form.addEventListener('submit', save);
