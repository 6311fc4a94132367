// Field errors of the admin forms, one mechanism for all of them. The server names every bad
// field of a body at once ("email.linkUrl: …; email.subject: …", docs/API-DESIGN.md "Errors");
// each problem goes beside its field (the element whose data-field-wrap names it; a wrap may
// name several, separated by spaces), all at once, and goes away as soon as that field is
// changed. A path ending in [n] is the n-th item of a list field: its text starts with the
// wrap's data-item-label ("line 2: …"), and the wrap's n-th [data-field-item] holds the input
// marked invalid.
import { h, $$, setNotice } from '../shared/dom.js';

const FIELD = /^([A-Za-z_][\w.]*(?:\[\d+\])?)\s*:\s*([\s\S]+)$/;
// "; " starts the next problem only where a field path and a colon follow.
const NEXT = /;\s+(?=[A-Za-z_][\w.]*(?:\[\d+\])?\s*:)/;
const INPUT = 'input:not([type="radio"]):not([type="checkbox"]), textarea, select';

/** The problems a message names ([{field, index, text}]), or null when a part names no field. */
export function splitFieldMessages(message) {
  const problems = String(message || '').split(NEXT).map((part) => {
    const m = FIELD.exec(part);
    if (!m) return null;
    const item = /^(.*)\[(\d+)\]$/.exec(m[1]);
    return item ? { field: item[1], index: Number(item[2]), text: m[2] } : { field: m[1], index: null, text: m[2] };
  });
  return problems.every(Boolean) ? problems : null;
}

function unmark(input) {
  input.removeAttribute('aria-invalid');
  const ids = (input.getAttribute('aria-describedby') || '').split(' ').filter((id) => id && !id.startsWith('err-'));
  if (ids.length) input.setAttribute('aria-describedby', ids.join(' '));
  else input.removeAttribute('aria-describedby');
}

export function clearFieldErrors(form) {
  $$('.field-error', form).forEach((el) => el.remove());
  $$('[aria-invalid="true"]', form).forEach(unmark);
}

/** An input or change event: the error of the changed field goes (and the form's notice with the last one). */
export function clearOwnError(event) {
  const wrap = event.target.closest && event.target.closest('[data-field-wrap]');
  if (!wrap) return;
  clearFieldErrors(wrap);
  const form = wrap.closest('form');
  const notice = form && form.querySelector('.notice.error');
  if (form && notice && !form.querySelector('.field-error')) setNotice(notice, '');
}

/** Show one problem beside its field; false when the form has no visible place for it. */
function showFieldError(form, { field, index = null, text }) {
  const wrap = form.querySelector(`[data-field-wrap~="${CSS.escape(field)}"]`);
  if (!wrap || wrap.closest('[hidden]')) return false;
  const id = `err-${form.id}-${field.replace(/[^\w-]/g, '-')}-${wrap.querySelectorAll('.field-error').length}`;
  const shown = index === null ? text : `${wrap.dataset.itemLabel || 'item'} ${index + 1}: ${text}`;
  wrap.append(h('p', { class: 'field-error', id, 'data-testid': 'field-error', 'data-field': field, text: shown }));
  const item = index === null ? null : wrap.querySelectorAll('[data-field-item]')[index];
  const place = item || wrap;
  const input = place.querySelector(INPUT) || place.querySelector('input');
  if (input) {
    input.setAttribute('aria-invalid', 'true');
    const described = (input.getAttribute('aria-describedby') || '').split(' ').filter(Boolean);
    input.setAttribute('aria-describedby', [...described, id].join(' '));
  }
  return true;
}

function focusFirstInvalid(form) {
  const first = form.querySelector('[aria-invalid="true"]');
  if (first) first.focus();
}

/**
 * Mark every problem ([{field, index?, text}]) beside its field, say so in `notice` and focus
 * the first. False, with nothing marked, when one of them has no place in the form.
 */
export function markFields(form, notice, problems) {
  clearFieldErrors(form);
  if (!problems.length || !problems.every((p) => showFieldError(form, p))) {
    clearFieldErrors(form);
    return false;
  }
  setNotice(notice, problems.length > 1 ? 'Please correct the fields marked below.' : 'Please correct the field marked below.');
  focusFirstInvalid(form);
  return true;
}

/** A 400's message: each field it names marked; a message that names none goes to `notice` as it is. */
export function showInvalid(form, notice, message) {
  if (!markFields(form, notice, splitFieldMessages(message) || [])) setNotice(notice, message || 'The server refused this.');
}
