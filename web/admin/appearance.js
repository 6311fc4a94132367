// The "Appearance & hours" tab of a messenger: title, colour, greeting, business hours (a time
// zone and intervals per weekday), away message and expected reply time, read and saved as
// one (GET/PUT …/messengers/{id}/appearance). Every error goes beside its field at once, in
// the server's words ("businessHours.weekly.mon[0]: ends at 09:00 before it starts at 17:00"
// is "hours 1: …" beside Monday), through ./fields.js.
import { h, $, $$, clear, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError } from '../shared/format.js';
import { api } from '../shared/session.js';
import { clearFieldErrors, markFields, showInvalid } from './fields.js';

const DAYS = [
  ['mon', 'Monday'],
  ['tue', 'Tuesday'],
  ['wed', 'Wednesday'],
  ['thu', 'Thursday'],
  ['fri', 'Friday'],
  ['sat', 'Saturday'],
  ['sun', 'Sunday'],
];
const DEFAULT_COLOR = '#1f5fbf';
const MAX_INTERVALS = 8;

const ui = {
  panel: $('#appearance-panel'),
  form: $('#appearance-form'),
  error: $('#appearance-error'),
  title: $('#appearance-title-input'),
  color: $('#appearance-color'),
  colorValue: $('#appearance-color-value'),
  greeting: $('#appearance-greeting'),
  hoursOn: $('#appearance-hours-on'),
  hours: $('#appearance-hours'),
  zone: $('#appearance-zone'),
  zones: $('#appearance-zones'),
  week: $('#appearance-week'),
  away: $('#appearance-away'),
  replyTime: $('#appearance-reply-time'),
  save: $('#appearance-save'),
  status: $('#appearance-status'),
};

const state = { siteId: null, messengerId: null, canEdit: false, onSessionEnded: () => {}, serial: 0 };

function path() {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}/messengers/${encodeURIComponent(state.messengerId)}/appearance`;
}

// ---------------------------------------------------------------------------------------------
// The weekly hours editor: per day a list of "opens – closes" rows.

function intervalRow(day, label, [start, end] = ['09:00', '17:00']) {
  const opens = h('input', { type: 'time', required: true, 'data-testid': `hours-${day}-start`, value: start, 'aria-label': `${label}: opens` });
  const closes = h('input', {
    type: 'time',
    required: true,
    'data-testid': `hours-${day}-end`,
    value: end === '24:00' ? '00:00' : end,
    'aria-label': `${label}: closes (00:00 is midnight)`,
  });
  const remove = h('button', { type: 'button', class: 'secondary', 'data-testid': `hours-${day}-remove`, text: 'Remove', 'aria-label': `Remove these ${label} hours` });
  const row = h('li', { class: 'interval', 'data-field-item': '' }, opens, h('span', { 'aria-hidden': 'true', text: '–' }), closes, remove);
  remove.addEventListener('click', () => {
    const next = row.nextElementSibling || row.previousElementSibling;
    row.remove();
    updateDay(day);
    (next ? next.querySelector('input') : $(`[data-testid="hours-${day}-add"]`)).focus();
  });
  return row;
}

function list(day) {
  return $(`[data-day="${day}"] .intervals`, ui.week);
}

function updateDay(day) {
  const li = $(`[data-day="${day}"]`, ui.week);
  const rows = $$('.interval', li);
  $('.closed', li).hidden = rows.length > 0;
  $(`[data-testid="hours-${day}-add"]`, li).disabled = !state.canEdit || rows.length >= MAX_INTERVALS;
}

function buildWeek(weekly) {
  clear(ui.week);
  for (const [day, label] of DAYS) {
    const add = h('button', { type: 'button', class: 'secondary', 'data-testid': `hours-${day}-add`, text: 'Add hours' });
    add.setAttribute('aria-label', `Add hours on ${label}`);
    const intervals = h('ul', { class: 'intervals', 'aria-label': `${label} hours` });
    const li = h(
      'li',
      { 'data-day': day, 'data-field-wrap': `businessHours.weekly.${day}`, 'data-item-label': 'hours' },
      h('span', { class: 'day-name', text: label }),
      h('div', {}, h('p', { class: 'closed', text: 'Closed' }), intervals, add),
    );
    ui.week.append(li);
    for (const iv of (weekly && weekly[day]) || []) intervals.append(intervalRow(day, label, iv));
    add.addEventListener('click', () => {
      const rows = $$('.interval', intervals);
      const last = rows[rows.length - 1];
      const row = intervalRow(day, label, last ? ['13:00', '17:00'] : ['09:00', '17:00']);
      intervals.append(row);
      updateDay(day);
      row.querySelector('input').focus();
    });
    updateDay(day);
  }
}

function readWeek() {
  const weekly = {};
  for (const [day] of DAYS) {
    weekly[day] = $$('.interval', list(day)).map((row) => {
      const [opens, closes] = $$('input[type="time"]', row).map((i) => i.value);
      // A time input cannot say 24:00: closing at 00:00 is midnight, the end of the day.
      return [opens, closes === '00:00' ? '24:00' : closes];
    });
  }
  return weekly;
}

// ---------------------------------------------------------------------------------------------
// Fill and read the form

function setColor(color) {
  const c = /^#[0-9a-f]{6}$/i.test(color || '') ? color.toLowerCase() : DEFAULT_COLOR;
  ui.color.value = c;
  ui.colorValue.textContent = c;
}

function browserZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

function fill(a) {
  ui.title.value = a.title || '';
  setColor(a.color);
  ui.greeting.value = a.greeting || '';
  ui.away.value = a.awayMessage || '';
  ui.replyTime.value = a.replyTime || '';
  const hours = a.businessHours;
  ui.hoursOn.checked = Boolean(hours);
  ui.hours.hidden = !hours;
  ui.zone.value = hours ? hours.timeZone : browserZone();
  buildWeek(hours ? hours.weekly : { mon: [['09:00', '17:00']], tue: [['09:00', '17:00']], wed: [['09:00', '17:00']], thu: [['09:00', '17:00']], fri: [['09:00', '17:00']] });
  for (const el of ui.form.querySelectorAll('input, textarea, button')) el.disabled = !state.canEdit;
  for (const [day] of DAYS) updateDay(day);
}

function read() {
  return {
    title: ui.title.value.trim() || null,
    greeting: ui.greeting.value.trim() || null,
    color: ui.color.value,
    awayMessage: ui.away.value.trim() || null,
    replyTime: ui.replyTime.value.trim() || null,
    businessHours: ui.hoursOn.checked ? { timeZone: ui.zone.value.trim(), weekly: readWeek() } : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Errors beside their fields

function clearErrors() {
  clearFieldErrors(ui.form);
  setNotice(ui.error, '');
}

function report(err) {
  if (err instanceof ApiError && err.status === 401) {
    state.onSessionEnded();
    return;
  }
  if (err instanceof ApiError && err.status === 400) {
    showInvalid(ui.form, ui.error, err.message);
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    setNotice(ui.error, 'Only site admins can change the appearance and hours.');
    return;
  }
  setNotice(ui.error, describeError(err));
}

/** What the browser can tell before the server does: a missing zone, half-filled hours. */
function checkLocally(body) {
  if (!body.businessHours) return [];
  const problems = [];
  if (!body.businessHours.timeZone) problems.push({ field: 'businessHours.timeZone', text: 'choose a time zone, e.g. Europe/Berlin' });
  for (const [day, label] of DAYS) {
    body.businessHours.weekly[day].forEach(([a, b], index) => {
      if (!a || !b) problems.push({ field: `businessHours.weekly.${day}`, index, text: `give ${label} both an opening and a closing time` });
    });
  }
  return problems;
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const body = read();
  const local = checkLocally(body);
  if (local.length) {
    markFields(ui.form, ui.error, local);
    return;
  }
  const serial = state.serial;
  ui.save.disabled = true;
  ui.status.textContent = 'Saving…';
  try {
    const saved = await api(path(), { method: 'PUT', body });
    if (serial !== state.serial) return;
    fill(saved);
    ui.status.textContent = 'Saved.';
  } catch (err) {
    ui.status.textContent = '';
    report(err);
  } finally {
    ui.save.disabled = !state.canEdit;
  }
}

// ---------------------------------------------------------------------------------------------

/** The tab opens for a messenger: load its settings. */
export async function showAppearance({ siteId, messengerId, canEdit, onSessionEnded }) {
  state.serial += 1;
  const serial = state.serial;
  Object.assign(state, { siteId, messengerId, canEdit, onSessionEnded });
  ui.panel.hidden = false;
  clearErrors();
  ui.status.textContent = 'Loading…';
  try {
    const a = await api(path());
    if (serial !== state.serial) return;
    fill(a);
    ui.status.textContent = '';
  } catch (err) {
    ui.status.textContent = '';
    report(err);
  }
}

export function hideAppearance() {
  state.serial += 1;
  ui.panel.hidden = true;
}

function wire() {
  if (!ui.form) return;
  if (typeof Intl.supportedValuesOf === 'function') {
    for (const zone of Intl.supportedValuesOf('timeZone')) ui.zones.append(h('option', { value: zone }));
  }
  ui.form.addEventListener('submit', save);
  ui.color.addEventListener('input', () => {
    ui.colorValue.textContent = ui.color.value;
  });
  ui.hoursOn.addEventListener('change', () => {
    ui.hours.hidden = !ui.hoursOn.checked;
    if (ui.hoursOn.checked && !ui.zone.value) ui.zone.value = browserZone();
  });
}

wire();
