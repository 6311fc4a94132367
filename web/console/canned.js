// Canned replies in the composer (CONTRACT §16): typing "/" + a shortcut opens a small list
// filtered as you type; Enter or Tab inserts the reply's body in place of "/shortcut", Esc
// closes, arrows move. Ctrl+/ opens the list at the caret.
import { h, clear } from '../shared/dom.js';

/** The "/word" just before the caret, at the start of the text or after a space. */
function tokenBefore(textarea) {
  const upto = textarea.value.slice(0, textarea.selectionStart);
  const m = /(^|\s)\/([a-z0-9_-]*)$/.exec(upto);
  if (!m) return null;
  return { start: upto.length - m[2].length - 1, query: m[2] };
}

export class CannedPicker {
  /**
   * @param {HTMLTextAreaElement} textarea
   * @param {HTMLElement} listEl  a <ul role="listbox"> shown above the composer
   * @param {() => void} onInsert  called after a reply is inserted (e.g. to update buttons)
   */
  constructor(textarea, listEl, onInsert) {
    this.textarea = textarea;
    this.listEl = listEl;
    this.onInsert = onInsert;
    this.replies = [];
    this.shown = [];
    this.index = 0;
    this.token = null;
    // Capture phase: runs before the composer's own Enter-to-send handler.
    textarea.addEventListener('keydown', (e) => this.onKey(e), true);
    textarea.addEventListener('input', () => this.refresh());
    textarea.addEventListener('click', () => this.refresh());
    textarea.addEventListener('blur', () => setTimeout(() => this.close(), 150));
  }

  /** The site's canned replies, `[{cannedReplyId, shortcut, title, body}]`. */
  setReplies(replies) {
    this.replies = Array.isArray(replies) ? replies : [];
    if (this.isOpen()) this.refresh();
  }

  isOpen() {
    return !this.listEl.hidden;
  }

  /** Open the list at the caret, typing the "/" if it is not there. */
  openAtCaret() {
    if (!tokenBefore(this.textarea)) {
      const { selectionStart: s, selectionEnd: e, value } = this.textarea;
      const before = value.slice(0, s);
      const slash = before === '' || /\s$/.test(before) ? '/' : ' /';
      this.textarea.value = before + slash + value.slice(e);
      const caret = s + slash.length;
      this.textarea.setSelectionRange(caret, caret);
    }
    this.textarea.focus();
    this.refresh();
  }

  refresh() {
    const token = tokenBefore(this.textarea);
    if (!token) {
      this.close();
      return;
    }
    const q = token.query.toLowerCase();
    const starts = this.replies.filter((r) => r.shortcut.startsWith(q));
    const inTitle = this.replies.filter((r) => !r.shortcut.startsWith(q) && q && r.title.toLowerCase().includes(q));
    this.shown = [...starts, ...inTitle].slice(0, 8);
    this.token = token;
    if (this.index >= this.shown.length) this.index = 0;
    this.render();
  }

  render() {
    clear(this.listEl);
    if (!this.shown.length) {
      this.listEl.append(h('li', { class: 'canned-empty muted', text: this.replies.length ? 'No canned reply matches.' : 'This site has no canned replies yet.' }));
    }
    this.shown.forEach((r, i) => {
      const item = h(
        'li',
        {
          role: 'option',
          id: `canned-${r.cannedReplyId}`,
          class: 'canned-item',
          'data-testid': 'canned-item',
          'data-shortcut': r.shortcut,
          'aria-selected': String(i === this.index),
        },
        h('span', { class: 'canned-shortcut mono', text: `/${r.shortcut}` }),
        h('span', { class: 'canned-title', text: r.title }),
        h('span', { class: 'canned-body small muted', text: r.body.slice(0, 120) }),
      );
      // mousedown, not click: the textarea must not lose the caret first.
      item.addEventListener('mousedown', (e) => {
        e.preventDefault();
        this.index = i;
        this.insert();
      });
      this.listEl.append(item);
    });
    this.listEl.hidden = false;
    const active = this.shown[this.index];
    if (active) this.textarea.setAttribute('aria-activedescendant', `canned-${active.cannedReplyId}`);
  }

  close() {
    if (this.listEl.hidden) return;
    this.listEl.hidden = true;
    this.textarea.removeAttribute('aria-activedescendant');
    this.index = 0;
  }

  insert() {
    const r = this.shown[this.index];
    const token = tokenBefore(this.textarea);
    if (!r || !token) return;
    const { value, selectionStart } = this.textarea;
    this.textarea.value = value.slice(0, token.start) + r.body + value.slice(selectionStart);
    const caret = token.start + r.body.length;
    this.textarea.setSelectionRange(caret, caret);
    this.close();
    this.onInsert();
  }

  onKey(e) {
    if (e.key === '/' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      e.stopImmediatePropagation();
      this.openAtCaret();
      return;
    }
    if (!this.isOpen()) return;
    const n = this.shown.length;
    switch (e.key) {
      case 'Escape':
        this.close();
        break;
      case 'ArrowDown':
        if (n) this.index = (this.index + 1) % n;
        this.render();
        break;
      case 'ArrowUp':
        if (n) this.index = (this.index - 1 + n) % n;
        this.render();
        break;
      case 'Enter':
      case 'Tab':
        if (!n || e.shiftKey) return;
        this.insert();
        break;
      default:
        return;
    }
    e.preventDefault();
    e.stopImmediatePropagation();
  }
}
