// The contact panel: a contact's attributes and its conversations, open and closed, newest
// first (GET …/conversations?contactId=, paged by its `next` cursor), and the contact search
// (GET …/contacts?query=) that opens it.
import { h, $, clear } from '../shared/dom.js';
import { formatDateTime } from '../shared/format.js';

export const ATTRIBUTE_LABELS = {
  name: 'Name', alias: 'Alias', title: 'Title', company: 'Company', email: 'Email', phone: 'Phone',
  sms: 'SMS', fax: 'Fax', city: 'City', state: 'State', country: 'Country',
  mailingAddress: 'Mailing address', zipAddress: 'ZIP',
};

export function fillAttributes(dl, contact) {
  clear(dl);
  const attrs = (contact && contact.attributes) || {};
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === '') continue;
    dl.append(h('dt', { text: ATTRIBUTE_LABELS[key] || key }), h('dd', { text: String(value) }));
  }
}

export class ContactPanel {
  /**
   * @param {object} o
   * @param {(path: string) => Promise<any>} o.get    GET a site path (after /api/v1/sites/{id})
   * @param {(c: object) => void} o.open              open a conversation of the history
   * @param {(e: any) => void} o.onError
   */
  constructor({ get, open, onError }) {
    this.get = get;
    this.open = open;
    this.onError = onError;
    this.contact = null;
    this.next = null;
    this.serial = 0;
    this.el = {
      panel: $('#contact-panel'),
      identity: $('#panel-identity'),
      attributes: $('#panel-attributes'),
      history: $('#panel-history'),
      empty: $('#panel-empty'),
      more: $('#panel-more'),
      close: $('#panel-close'),
      searchForm: $('#contact-search-form'),
      search: $('#contact-search'),
      results: $('#contact-results'),
    };
    this.el.close.addEventListener('click', () => this.hide());
    this.el.more.addEventListener('click', () => this.loadHistory(false));
    this.searchTimer = null;
    this.el.search.addEventListener('input', () => {
      clearTimeout(this.searchTimer);
      this.searchTimer = setTimeout(() => this.search(), 250);
    });
    this.el.searchForm.addEventListener('submit', (e) => {
      e.preventDefault();
      clearTimeout(this.searchTimer);
      this.search();
    });
    this.el.search.addEventListener('keydown', (e) => {
      if (e.key === 'Escape') this.clearSearch();
    });
  }

  /** Show `contact` and its conversations; `current` is the conversation on screen, if any. */
  show(contact, current) {
    if (!contact || !contact.contactId) return;
    const same = this.contact && this.contact.contactId === contact.contactId;
    this.contact = contact;
    this.current = current || null;
    this.el.panel.hidden = false;
    this.el.identity.textContent = contact.identity || '';
    fillAttributes(this.el.attributes, contact);
    if (!same) this.loadHistory(true);
    else this.markCurrent();
  }

  hide() {
    this.el.panel.hidden = true;
    this.contact = null;
  }

  /** A conversation changed (live): refresh the history if it is this contact's. */
  changed(c) {
    if (this.contact && c && c.contactId === this.contact.contactId) this.loadHistory(true);
  }

  async loadHistory(fresh) {
    const contact = this.contact;
    if (!contact) return;
    const serial = ++this.serial;
    const after = fresh ? '' : `&after=${encodeURIComponent(this.next || '')}`;
    try {
      const page = await this.get(`/conversations?contactId=${encodeURIComponent(contact.contactId)}&limit=20${after}`);
      if (serial !== this.serial || this.contact !== contact) return;
      if (fresh) clear(this.el.history);
      for (const c of page.conversations || []) this.el.history.append(this.item(c));
      this.next = page.next || null;
      this.el.more.hidden = !this.next;
      this.el.empty.hidden = this.el.history.children.length > 0;
      this.markCurrent();
    } catch (err) {
      this.onError(err);
    }
  }

  item(c) {
    const last = c.lastMessage;
    const button = h(
      'button',
      { type: 'button', class: 'history-item', 'data-testid': 'history-item', 'data-conversation-id': c.conversationId, 'data-status': c.status },
      h('span', { class: `tag${c.status === 'open' ? ' ok' : ''}`, text: c.status === 'open' ? 'Open' : 'Closed' }),
      h('span', { class: 'small', text: formatDateTime(c.updatedAt) }),
      h('span', { class: 'small muted history-text', text: last ? last.body.slice(0, 80) : '' }),
    );
    button.addEventListener('click', () => this.open(c));
    return h('li', {}, button);
  }

  markCurrent() {
    for (const b of this.el.history.querySelectorAll('.history-item')) {
      b.setAttribute('aria-current', String(Boolean(this.current) && b.dataset.conversationId === this.current));
    }
  }

  clearSearch() {
    this.el.search.value = '';
    clear(this.el.results);
    this.el.results.hidden = true;
  }

  async search() {
    const text = this.el.search.value.trim();
    if (!text) {
      this.clearSearch();
      return;
    }
    try {
      const found = await this.get(`/contacts?query=${encodeURIComponent(text)}`);
      if (this.el.search.value.trim() !== text) return;
      clear(this.el.results);
      const contacts = (found && found.contacts) || [];
      if (!contacts.length) this.el.results.append(h('li', { class: 'muted small', text: 'No contact matches.' }));
      for (const k of contacts) {
        const attrs = k.attributes || {};
        const b = h(
          'button',
          { type: 'button', class: 'contact-result', 'data-testid': 'contact-result', 'data-contact-id': k.contactId },
          h('span', { text: attrs.name || attrs.alias || k.identity }),
          h('span', { class: 'mono small muted', text: k.identity }),
        );
        b.addEventListener('click', () => {
          this.clearSearch();
          this.show(k, null);
        });
        this.el.results.append(h('li', {}, b));
      }
      this.el.results.hidden = false;
    } catch (err) {
      this.onError(err);
    }
  }
}
