// The portal's own script on its messages pages. It waits for the Confidant loader, shows what
// the messenger tells the page (Confidant.on), and, on the "backend authorize" page, starts the
// messenger with the access token from the backend and a getToken that asks the backend again.
//
// The page includes it BEFORE the async loader, as a plain script: the loader may start the
// messenger (from the installation code's data attributes) as soon as it runs, and a listener
// added later could miss the first events. The callbacks touch the page only once the loader
// has run, which is never before the document is parsed.
(function () {
  'use strict';

  function whenConfidant(fn) {
    if (window.Confidant) fn(window.Confidant);
    else window.addEventListener('confidant:loaded', function () { fn(window.Confidant); }, { once: true });
  }

  function logEvent(name, text) {
    var item = document.createElement('li');
    item.setAttribute('data-event', name);
    item.textContent = name + ': ' + text;
    document.getElementById('event-log').appendChild(item);
  }

  function setStatus(state, text) {
    var el = document.getElementById('messenger-status');
    el.setAttribute('data-state', state);
    el.textContent = text;
  }

  // getToken: the backend authorizes again for the signed-in customer and answers the access
  // token (never a Contact JWT). The session cookie says who; nothing else is sent.
  function getTokenFrom(url) {
    return function getToken() {
      return fetch(url, { method: 'POST', credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (res) {
          if (!res.ok) throw new Error('the portal answered ' + res.status);
          return res.json();
        })
        .then(function (data) {
          logEvent('getToken', 'a fresh access token from the portal backend');
          return data.accessToken;
        });
    };
  }

  whenConfidant(function (Confidant) {
    Confidant.on('ready', function (info) {
      setStatus('ready', 'ready');
      logEvent('ready', 'site ' + info.siteId + ', messenger ' + info.messengerId);
    });
    Confidant.on('message', function (message) {
      var who = message.sender.type === 'agent' ? message.sender.name || 'Support' : message.sender.type;
      logEvent('message', who + ': ' + message.body);
    });
    Confidant.on('unread', function (count) {
      document.getElementById('unread-count').textContent = String(count);
    });
    Confidant.on('error', function (err) {
      setStatus('error', err.code + ': ' + err.message);
      logEvent('error', err.code + ': ' + err.message);
    });

    document.getElementById('open-messenger').addEventListener('click', function () {
      Confidant.open();
    });
    var logout = document.getElementById('logout-form');
    if (logout) {
      // The customer leaves: forget everything the messenger kept in this browser first.
      logout.addEventListener('submit', function () {
        Confidant.shutdown();
      });
    }

    // The "backend authorize" page: start the messenger ourselves, with getToken.
    var el = document.getElementById('portal-messenger');
    if (el) {
      Confidant.init({
        siteId: Number(el.getAttribute('data-site-id')),
        messengerId: el.getAttribute('data-messenger-id'),
        accessToken: el.getAttribute('data-access-token'),
        getToken: getTokenFrom(el.getAttribute('data-token-url')),
      });
    }
  });
})();
