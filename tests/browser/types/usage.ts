// Uses every call and event of the browser API the way an integrator's code would; the types
// test compiles it with `tsc --noEmit --strict` against web/messenger/v1/confidant.d.ts.
/// <reference path="../../../web/messenger/v1/confidant.d.ts" />

const badge = document.createElement('span');

async function getToken(): Promise<string> {
  const res = await fetch('/confidant-token', { method: 'POST', credentials: 'same-origin' });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}`);
  const data: { accessToken: string } = await res.json();
  return data.accessToken;
}

function whenConfidant(): Promise<Confidant.Api> {
  if (window.Confidant) return Promise.resolve(window.Confidant);
  return new Promise((resolve) =>
    window.addEventListener('confidant:loaded', (event) => {
      const version: string = event.detail.version;
      console.info('loader', version);
      resolve(window.Confidant);
    }, { once: true }),
  );
}

export async function start(siteId: number, messengerId: string, contactJwt: string | null): Promise<boolean> {
  const api = await whenConfidant();
  const version: string = api.version;
  console.info(version, Confidant.version);

  const offReady = api.on('ready', (info) => {
    const site: number = info.siteId;
    const messenger: string = info.messengerId;
    console.info(site, messenger);
  });
  api.on('message', (m) => {
    const seq: number = m.seq;
    const who: 'contact' | 'agent' | 'system' = m.sender.type;
    const files: number = (m.attachments ?? []).reduce((n, a) => n + a.size, 0);
    const id: string | null = m.clientMessageId;
    if (who === 'agent') console.info(m.sender.name, m.body, m.conversationId, m.messageId, m.createdAt, seq, files, id);
  });
  const onUnread: Confidant.Listener<'unread'> = (count) => {
    badge.textContent = String(count + 0);
    badge.hidden = count === 0;
  };
  api.on('unread', onUnread);
  api.on('error', (err: Confidant.ErrorEvent) => {
    switch (err.code) {
      case 'origin_not_allowed':
      case 'token_expired':
        console.warn(err.message);
        break;
      default:
        console.warn(err.code, err.message);
    }
  });
  offReady();
  api.off('unread', onUnread);

  const options: Confidant.InitOptions = { siteId, messengerId, getToken };
  if (contactJwt) options.contactJwt = contactJwt;
  const shown: boolean = await api.init(options);
  await Confidant.init({ siteId: '10000', messengerId, accessToken: 'eyJ…', getToken: () => 'eyJ…' });
  api.open();
  api.close();
  api.shutdown();
  return shown;
}

window.ConfidantSettings = { siteId: 10000, messengerId: 'ea5380a4-77c1-436e-a47a-37fd2c8af550', getToken };
