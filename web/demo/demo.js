// The demo portal: plays a business page that embeds the messenger with the loader's JS API.
import { h, $, clear, setNotice } from '../shared/dom.js';
import { apiFetch } from '../shared/http.js';
import { describeError } from '../shared/format.js';

const ui = {
  error: $('#demo-error'),
  customer: $('#customer'),
  openJwt: $('#open-jwt'),
  openAuthorize: $('#open-authorize'),
  logout: $('#logout-customer'),
  signedIn: $('#signed-in'),
  log: $('#event-log'),
};

let demo = null; // { siteId, messengerId, customers }
let signedIn = null; // customer id whose messenger is running

// --- the portal's "backend" ---------------------------------------------------------------

async function fetchContactJwt(customer) {
  const data = await apiFetch('/demo/api/contact-jwt', { method: 'POST', body: { customer } });
  return data.contactJwt;
}

async function fetchAccessToken(customer) {
  const data = await apiFetch('/demo/api/access-token', { method: 'POST', body: { customer } });
  return data.accessToken;
}

// --- the loader -------------------------------------------------------------------------------

function waitForConfidant() {
  if (window.Confidant) return Promise.resolve(window.Confidant);
  return new Promise((resolve, reject) => {
    const script = $('#confidant-loader');
    const done = () => (window.Confidant ? resolve(window.Confidant) : reject(new Error('loader did not start')));
    window.addEventListener('confidant:loaded', done, { once: true });
    script.addEventListener('load', done, { once: true });
    script.addEventListener('error', () => reject(new Error('the messenger loader could not be loaded')), { once: true });
  });
}

function logEvent(name, payload, isError = false) {
  const time = new Date().toLocaleTimeString();
  let text = payload === undefined ? '' : JSON.stringify(payload);
  if (text.length > 240) text = `${text.slice(0, 240)}…`;
  ui.log.prepend(h('li', { class: isError ? 'error' : '', text: `${time} ${name} ${text}` }));
  while (ui.log.children.length > 50) ui.log.lastChild.remove();
}

function listen(Confidant) {
  Confidant.on('ready', (info) => logEvent('ready', info));
  Confidant.on('message', (m) => logEvent('message', { seq: m.seq, sender: m.sender && m.sender.type, body: m.body }));
  Confidant.on('unread', (count) => logEvent('unread', count));
  Confidant.on('error', (err) => {
    logEvent('error', err, true);
    setNotice(ui.error, `Messenger: ${err.message || err.code} (${err.code})`);
  });
}

// --- page ---------------------------------------------------------------------------------------

function customerName(id) {
  const c = demo && demo.customers.find((x) => x.id === id);
  return c ? `${c.name} (${c.email})` : id;
}

function updateStatus() {
  ui.signedIn.textContent = signedIn ? `Messenger running for ${customerName(signedIn)}.` : 'Nobody is signed in.';
  ui.logout.disabled = !signedIn;
}

function stopMessenger() {
  if (window.Confidant) window.Confidant.shutdown();
  signedIn = null;
  updateStatus();
}

async function openMessenger(route) {
  setNotice(ui.error, '');
  const customer = ui.customer.value;
  if (!customer) {
    setNotice(ui.error, 'Pick a customer first.');
    ui.customer.focus();
    return;
  }
  const Confidant = await waitForConfidant();
  Confidant.shutdown(); // never show one customer's conversation to another
  signedIn = null;
  updateStatus();
  const buttons = [ui.openJwt, ui.openAuthorize];
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const base = { siteId: demo.siteId, messengerId: demo.messengerId };
    let started;
    if (route === 'jwt') {
      const contactJwt = await fetchContactJwt(customer);
      started = Confidant.init({ ...base, contactJwt, getToken: () => fetchContactJwt(customer) });
    } else {
      const accessToken = await fetchAccessToken(customer);
      started = Confidant.init({ ...base, accessToken, getToken: () => fetchAccessToken(customer) });
    }
    signedIn = customer;
    logEvent('init', { customer, route });
    Confidant.open(); // opens as soon as the messenger is built
    updateStatus();
    const ok = await started; // false: the 'error' event said why
    if (!ok && signedIn === customer) signedIn = null;
  } catch (err) {
    setNotice(ui.error, `The portal backend could not sign in ${customerName(customer)}: ${describeError(err)}`);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
    updateStatus();
  }
}

async function loadDemo() {
  try {
    demo = await apiFetch('/demo/api/config');
  } catch (err) {
    setNotice(ui.error, `The demo is not available: ${describeError(err)} (is the server running with "confidant demo"?)`);
    clear(ui.customer);
    ui.customer.append(h('option', { value: '', text: 'No customers' }));
    return;
  }
  clear(ui.customer);
  ui.customer.append(h('option', { value: '', text: 'Choose a customer…' }));
  for (const c of demo.customers || []) ui.customer.append(h('option', { value: c.id, text: `${c.name} — ${c.email}` }));
  ui.customer.disabled = false;
  ui.openJwt.disabled = false;
  ui.openAuthorize.disabled = false;
}

function wire() {
  ui.customer.addEventListener('change', () => {
    // another person "signs in": the previous customer's messenger must go first
    if (signedIn) stopMessenger();
    setNotice(ui.error, '');
  });
  ui.openJwt.addEventListener('click', () => openMessenger('jwt'));
  ui.openAuthorize.addEventListener('click', () => openMessenger('authorize'));
  ui.logout.addEventListener('click', () => {
    stopMessenger();
    logEvent('shutdown');
  });
}

wire();
updateStatus();
loadDemo();
waitForConfidant().then(listen, (err) => setNotice(ui.error, `The messenger could not load: ${err.message}`));
