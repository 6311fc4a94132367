// Attachments (CONTRACT §11) in the pages: uploads with progress (XMLHttpRequest, whose upload
// progress fetch() cannot report), downloads through fetch() with the Authorization header
// (never a token in a URL), image thumbnails from object URLs, and the chips that show files.

import { h } from './dom.js';

/** "1.2 MB" */
export function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10 * 1024 ? 1 : 0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/**
 * POST `file` as multipart/form-data (one part `file`) to `url`. Resolves with the server's
 * answer ({attachmentId, filename, contentType, size, sha256}); rejects with
 * {status, code, message} (the server's error body when there is one).
 */
export function uploadFile(url, { token = null, file, onProgress = () => {}, withCredentials = false }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', url);
    if (token) xhr.setRequestHeader('Authorization', `Bearer ${token}`);
    xhr.withCredentials = withCredentials;
    xhr.responseType = 'text';
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      let body = null;
      try {
        body = JSON.parse(xhr.responseText || 'null');
      } catch {
        body = null;
      }
      if (xhr.status === 201 && body) {
        onProgress(1);
        resolve(body);
      } else {
        const err = body && body.error ? body.error : {};
        reject({ status: xhr.status, code: err.code || 'upload_failed', message: err.message || `the upload failed (${xhr.status})` });
      }
    };
    xhr.onerror = () => reject({ status: 0, code: 'network', message: 'the connection failed during the upload' });
    const form = new FormData();
    form.append('file', file, file.name);
    xhr.send(form);
  });
}

/** GET an attachment's bytes as a Blob (with the bearer token, or the session cookie). */
export async function fetchBlob(url, { token = null, credentials = 'omit' } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(url, { headers, credentials });
  if (!r.ok) throw new Error(`download failed (${r.status})`);
  return r.blob();
}

/** Save a Blob under `filename` (an object URL and a temporary link). */
export function saveBlob(blob, filename) {
  const href = URL.createObjectURL(blob);
  const a = h('a', { href, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 60_000);
}

/**
 * The attachments of a message: a thumbnail for each image, a chip (name, size, download) for
 * every file. `urlOf(id)` is the download URL; `get(url)` resolves with a Blob.
 */
export function attachmentList(attachments, { urlOf, get }) {
  const box = h('div', { class: 'attachments', 'data-testid': 'attachments' });
  for (const a of attachments || []) {
    const chip = h(
      'button',
      { type: 'button', class: 'attachment-chip', 'data-testid': 'attachment', 'data-filename': a.filename, title: `Download ${a.filename}` },
      h('span', { class: 'attachment-name', text: a.filename }),
      h('span', { class: 'attachment-size muted', text: formatSize(a.size) }),
    );
    chip.addEventListener('click', async () => {
      chip.disabled = true;
      try {
        saveBlob(await get(urlOf(a.attachmentId)), a.filename);
      } catch (e) {
        chip.title = String(e.message || e);
        chip.classList.add('failed');
      } finally {
        chip.disabled = false;
      }
    });
    const item = h('div', { class: 'attachment' });
    if (/^image\/(png|jpeg|gif|webp)$/.test(a.contentType)) {
      const img = h('img', { class: 'attachment-thumb', alt: a.filename, 'data-testid': 'attachment-thumb' });
      get(urlOf(a.attachmentId))
        .then((blob) => {
          img.src = URL.createObjectURL(blob);
        })
        .catch(() => img.remove());
      item.append(img);
    }
    item.append(chip);
    box.append(item);
  }
  return box;
}

/**
 * The files picked for the next message: a tray of chips with progress, retry and remove.
 * `upload(file, onProgress)` resolves with the server's answer or rejects with {message}.
 */
export class AttachmentTray {
  constructor(tray, { upload, maxBytes = Infinity, allowedTypes = null, onChange = () => {} }) {
    this.tray = tray;
    this.upload = upload;
    this.maxBytes = maxBytes;
    this.allowedTypes = allowedTypes;
    this.onChange = onChange;
    /** [{ file, li, state: 'uploading'|'done'|'failed', result }] */
    this.items = [];
  }

  add(files) {
    for (const file of files) {
      const li = h('li', { class: 'tray-item', 'data-testid': 'tray-item' });
      const item = { file, li, state: 'uploading', result: null };
      this.items.push(item);
      this.tray.append(li);
      if (file.size > this.maxBytes) {
        this.fail(item, `${file.name} is larger than ${formatSize(this.maxBytes)}`);
      } else {
        this.start(item);
      }
    }
    this.tray.hidden = this.items.length === 0;
    this.onChange();
  }

  draw(item, { progress = null, error = null } = {}) {
    const { li, file } = item;
    li.replaceChildren();
    li.dataset.state = item.state;
    li.append(h('span', { class: 'attachment-name', text: file.name }), h('span', { class: 'attachment-size muted', text: formatSize(file.size) }));
    if (item.state === 'uploading') {
      li.append(h('progress', { max: '1', value: String(progress ?? 0), 'aria-label': `Uploading ${file.name}` }));
    }
    if (error) li.append(h('span', { class: 'tray-error', role: 'alert', 'data-testid': 'attachment-error', text: error }));
    if (item.state === 'failed' && item.retryable) {
      const retry = h('button', { type: 'button', class: 'link', text: 'Retry', 'data-testid': 'attachment-retry' });
      retry.addEventListener('click', () => this.start(item));
      li.append(retry);
    }
    const remove = h('button', { type: 'button', class: 'link', text: 'Remove', 'aria-label': `Remove ${file.name}` });
    remove.addEventListener('click', () => this.remove(item));
    li.append(remove);
  }

  start(item) {
    item.state = 'uploading';
    this.draw(item);
    this.onChange();
    this.upload(item.file, (p) => this.draw(item, { progress: p }))
      .then((result) => {
        if (!this.items.includes(item)) return;
        item.state = 'done';
        item.result = result;
        this.draw(item);
        this.onChange();
      })
      .catch((err) => this.fail(item, err.message || 'the upload failed', !err.status || err.status >= 500 || err.status === 429));
  }

  /** A refused file (its type, its size) is not worth retrying; a failed connection is. */
  fail(item, message, retryable = false) {
    item.state = 'failed';
    item.retryable = retryable;
    this.draw(item, { error: message });
    this.onChange();
  }

  remove(item) {
    this.items = this.items.filter((i) => i !== item);
    item.li.remove();
    this.tray.hidden = this.items.length === 0;
    this.onChange();
  }

  /** Whether an upload is still running. */
  busy() {
    return this.items.some((i) => i.state === 'uploading');
  }

  /** The uploaded attachments' ids, in order. */
  ids() {
    return this.items.filter((i) => i.state === 'done').map((i) => i.result.attachmentId);
  }

  /** Empty the tray after a send (failed items stay, to retry or remove). */
  takeSent() {
    for (const item of this.items.filter((i) => i.state === 'done')) this.remove(item);
  }
}

/** Let `zone` take dropped files (and show that it would). */
export function wireDrop(zone, onFiles) {
  zone.addEventListener('dragover', (e) => {
    if (!e.dataTransfer || ![...e.dataTransfer.types].includes('Files')) return;
    e.preventDefault();
    zone.classList.add('dropping');
  });
  zone.addEventListener('dragleave', () => zone.classList.remove('dropping'));
  zone.addEventListener('drop', (e) => {
    zone.classList.remove('dropping');
    if (!e.dataTransfer || !e.dataTransfer.files.length) return;
    e.preventDefault();
    onFiles([...e.dataTransfer.files]);
  });
}
