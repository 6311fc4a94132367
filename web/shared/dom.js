// Tiny DOM helpers. User content is only ever set with textContent.

/**
 * Create an element.
 * h('p', { class: 'x', text: 'hello', 'data-testid': 'y' }, child1, child2)
 * `text` sets textContent; every other key is set as an attribute (null/false skip it, true sets "").
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'text') el.textContent = String(value);
    else if (key === 'class') el.className = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Remove every child of an element. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
}

/** Show a plain-text notice in an element (or hide it when text is empty). */
export function setNotice(el, text, kind = 'error') {
  if (!el) return;
  el.textContent = text || '';
  el.hidden = !text;
  el.classList.remove('error', 'warn', 'ok', 'info');
  el.classList.add(kind);
}

/** Copy text to the clipboard; falls back to selecting a textarea on insecure origins. */
export async function copyText(text, fallbackEl) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // fall through to the legacy path
  }
  if (fallbackEl && typeof fallbackEl.select === 'function') {
    fallbackEl.focus();
    fallbackEl.select();
    try {
      return document.execCommand('copy');
    } catch {
      return false;
    }
  }
  return false;
}
