// The Canned replies section of the site administration (CONTRACT §16): list, add, delete.
// Agents use them in the console by typing "/" and the shortcut. Every agent may read them;
// only site admins (and the operator) may change them.
import { h, $, $$, clear, setNotice } from '../shared/dom.js';
import { ApiError } from '../shared/http.js';
import { describeError } from '../shared/format.js';
import { api } from '../shared/session.js';
import { clearFieldErrors, markFields, showInvalid } from './fields.js';

const ui = {
  section: $('#canned-section'),
  list: $('#canned-replies'),
  empty: $('#canned-empty'),
  form: $('#canned-form'),
  error: $('#canned-error'),
  shortcut: $('#canned-shortcut'),
  title: $('#canned-title-input'),
  body: $('#canned-body'),
  submit: $('#canned-submit'),
};

const state = { siteId: null, canEdit: false, onSessionEnded: () => {} };

function path(rest = '') {
  return `/api/v1/sites/${encodeURIComponent(state.siteId)}/canned-replies${rest}`;
}

function report(err) {
  if (err instanceof ApiError && err.status === 401) {
    state.onSessionEnded();
    return;
  }
  if (err instanceof ApiError && err.status === 409) {
    markFields(ui.form, ui.error, [{ field: 'shortcut', text: 'Another canned reply already has this shortcut.' }]);
    return;
  }
  if (err instanceof ApiError && err.status === 400) {
    showInvalid(ui.form, ui.error, err.message);
    return;
  }
  if (err instanceof ApiError && err.status === 403) {
    setNotice(ui.error, err.message);
    return;
  }
  setNotice(ui.error, describeError(err));
}

/** Called when the section opens. */
export function showCanned({ siteId, canEdit, onSessionEnded }) {
  state.siteId = siteId;
  state.canEdit = canEdit;
  state.onSessionEnded = onSessionEnded;
  ui.form.hidden = !canEdit;
  $$('input, textarea, button', ui.form).forEach((el) => {
    el.disabled = !canEdit;
  });
  load();
}

export function resetCanned() {
  clear(ui.list);
  clearFieldErrors(ui.form);
  setNotice(ui.error, '');
  ui.form.reset();
}

async function load() {
  setNotice(ui.error, '');
  try {
    const data = await api(path());
    render((data && data.cannedReplies) || []);
  } catch (err) {
    report(err);
  }
}

function render(replies) {
  clear(ui.list);
  for (const r of replies) {
    const remove = h('button', { type: 'button', class: 'danger', 'data-testid': 'canned-delete', text: 'Delete', 'aria-label': `Delete /${r.shortcut}` });
    remove.hidden = !state.canEdit;
    remove.addEventListener('click', () => removeReply(r, remove));
    ui.list.append(
      h(
        'li',
        { class: 'canned-row', 'data-testid': 'canned-row', 'data-shortcut': r.shortcut },
        h('div', {}, h('span', { class: 'mono', text: `/${r.shortcut}` }), ' ', h('strong', { text: r.title })),
        h('p', { class: 'small muted canned-preview', text: r.body }),
        remove,
      ),
    );
  }
  ui.empty.hidden = replies.length > 0;
}

async function create(event) {
  event.preventDefault();
  clearFieldErrors(ui.form);
  setNotice(ui.error, '');
  // No checks here: the server names every bad field at once, for the API's users too.
  const body = { shortcut: ui.shortcut.value.trim().replace(/^\//, ''), title: ui.title.value.trim(), body: ui.body.value };
  ui.submit.disabled = true;
  try {
    await api(path(), { method: 'POST', body });
    ui.form.reset();
    await load();
    ui.shortcut.focus();
  } catch (err) {
    report(err);
  } finally {
    ui.submit.disabled = !state.canEdit;
  }
}

async function removeReply(r, button) {
  if (!window.confirm(`Delete the canned reply /${r.shortcut}?`)) return;
  button.disabled = true;
  try {
    await api(path(`/${encodeURIComponent(r.cannedReplyId)}`), { method: 'DELETE' });
    await load();
  } catch (err) {
    button.disabled = false;
    report(err);
  }
}

ui.form.addEventListener('submit', create);
