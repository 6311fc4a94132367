/*
 * Confidant messenger loader (runs on the business's page).
 *
 * Loaded as a classic script by the installation code:
 *   <div id="confidant-messenger" data-site-id="…" data-messenger-id="…" data-contact-jwt="" data-access-token=""></div>
 *   <script async src="https://confidant.example.com/messenger/v1/loader.js"></script>
 *
 * Security model (see docs/JS-API.md):
 *  - tokens go to the messenger iframe only by postMessage with targetOrigin = the server origin;
 *  - messages from the iframe are accepted only when event.origin is the server origin and
 *    event.source is our iframe's window;
 *  - no token is ever put in a URL, localStorage, sessionStorage or a cookie.
 *
 * The only global is window.Confidant.
 */
(function () {
  'use strict';

  if (window.Confidant && window.Confidant.version) return; // loaded twice: keep the first

  var VERSION = '1.0.0';
  var REFRESH_BEFORE_EXP_S = 60;
  var MIN_REFRESH_DELAY_MS = 5000;
  var MAX_TIMER_MS = 2147483000;
  var EVENTS = ['ready', 'message', 'unread', 'error'];

  // ---------------------------------------------------------------------------------------
  // Server origin: the origin this script was loaded from.

  function findServerOrigin() {
    var script = document.currentScript;
    if (!script || !script.src) {
      var all = document.getElementsByTagName('script');
      for (var i = all.length - 1; i >= 0; i--) {
        if (/\/messenger\/v1\/loader\.js(\?|#|$)/.test(all[i].src)) {
          script = all[i];
          break;
        }
      }
    }
    try {
      return new URL(script.src, location.href).origin;
    } catch (e) {
      return location.origin;
    }
  }

  var SERVER = findServerOrigin();

  // ---------------------------------------------------------------------------------------
  // Events for the page (Confidant.on). Listeners survive shutdown(): they belong to the page.

  var listeners = {};
  EVENTS.forEach(function (name) {
    listeners[name] = [];
  });

  function emit(name, payload) {
    listeners[name].slice().forEach(function (fn) {
      try {
        fn(payload);
      } catch (e) {
        setTimeout(function () {
          throw e;
        });
      }
    });
  }

  function emitError(code, message) {
    emit('error', { code: code, message: message });
  }

  // ---------------------------------------------------------------------------------------
  // JWT helpers (decoding only; the server verifies).

  function decodePayload(jwt) {
    if (typeof jwt !== 'string') return null;
    var parts = jwt.split('.');
    if (parts.length !== 3) return null;
    try {
      var b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      while (b64.length % 4) b64 += '=';
      var binary = atob(b64);
      var bytes = new Uint8Array(binary.length);
      for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
      var payload = JSON.parse(new TextDecoder().decode(bytes));
      return payload && typeof payload === 'object' ? payload : null;
    } catch (e) {
      return null;
    }
  }

  /** An access token names "confidant:<messengerId>" in aud; anything else is a Contact JWT. */
  function isAccessToken(payload) {
    if (!payload) return false;
    var aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    return aud.some(function (a) {
      return typeof a === 'string' && a.indexOf('confidant:') === 0;
    });
  }

  function audienceMatches(payload, messengerId) {
    var aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    return aud.indexOf('confidant:' + messengerId) !== -1;
  }

  // ---------------------------------------------------------------------------------------
  // allowedUrls path-prefix rule (web-spec: same scheme, host (with *.), port, path prefix).

  var DEFAULT_PORTS = { 'http:': '80', 'https:': '443' };

  function parseAllowedUrl(entry) {
    var m = /^(https?):\/\/(\[[^\]]+\]|[^\/:?#]+)(?::(\d+))?(\/[^?#]*)?/i.exec(String(entry).trim());
    if (!m) return null;
    var scheme = m[1].toLowerCase() + ':';
    return {
      scheme: scheme,
      host: m[2].toLowerCase(),
      port: m[3] || DEFAULT_PORTS[scheme],
      path: m[4] || '/',
    };
  }

  function hostMatches(pattern, host) {
    if (pattern.indexOf('*.') === 0) {
      var suffix = pattern.slice(1); // ".example.org"
      return host.length > suffix.length && host.slice(-suffix.length) === suffix;
    }
    return pattern === host;
  }

  function pageIsAllowed(allowedUrls, href) {
    var page = new URL(href);
    var pagePort = page.port || DEFAULT_PORTS[page.protocol];
    var pageHost = page.hostname.toLowerCase();
    return (allowedUrls || []).some(function (entry) {
      var rule = parseAllowedUrl(entry);
      return (
        !!rule &&
        rule.scheme === page.protocol &&
        hostMatches(rule.host, pageHost) &&
        rule.port === pagePort &&
        page.pathname.indexOf(rule.path) === 0
      );
    });
  }

  // ---------------------------------------------------------------------------------------
  // Network.

  function readError(response) {
    return response
      .json()
      .catch(function () {
        return null;
      })
      .then(function (body) {
        var err = (body && body.error) || {};
        return {
          code: err.code || (response.status === 401 ? 'unauthorized' : response.status >= 500 ? 'unavailable' : 'invalid_request'),
          message: err.message || 'The messenger server answered ' + response.status + '.',
        };
      });
  }

  function requestJson(path, init) {
    return fetch(SERVER + path, init).then(
      function (response) {
        if (response.ok) return response.json();
        return readError(response).then(function (err) {
          throw err;
        });
      },
      function () {
        throw { code: 'unavailable', message: 'The messenger server could not be reached.' };
      },
    );
  }

  function fetchConfig(siteId, messengerId) {
    var q = '?siteId=' + encodeURIComponent(siteId) + '&messengerId=' + encodeURIComponent(messengerId);
    return requestJson('/api/v1/messenger/config' + q, {
      method: 'GET',
      credentials: 'omit',
      headers: { Accept: 'application/json' },
    });
  }

  function authorize(siteId, messengerId, contactJwt, preview) {
    return requestJson('/securemessage/authorize', {
      method: 'POST',
      credentials: 'omit',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ siteId: siteId, messengerId: messengerId, contactJwt: contactJwt, isPreview: !!preview }),
    }).then(function (data) {
      if (!data || typeof data.accessToken !== 'string') {
        throw { code: 'unavailable', message: 'The messenger server gave no access token.' };
      }
      return data.accessToken;
    });
  }

  // ---------------------------------------------------------------------------------------
  // Preview mode (init's preview: true, or data-preview="true"): authorize with isPreview, and
  // when it refuses the Contact JWT, say why in the browser console. The token check (CONTRACT
  // §15) needs an admin session, which exists only on the server's own origin (the admin
  // pages, whose session cookie is SameSite=Strict): there the check runs and its list and
  // hint are printed; on any other page the §6 code and message are, with a pointer to the
  // admin pages' "Test a token" box. The token itself is never printed.

  var TOKEN_CODES = [
    'token_malformed', 'algorithm_not_allowed', 'key_not_found', 'signature_invalid', 'expiry_missing',
    'token_expired', 'token_not_yet_valid', 'token_lifetime_too_long', 'issuer_mismatch',
    'audience_mismatch', 'identity_missing', 'jwks_unavailable',
  ];

  function explainInConsole(siteId, messengerId, contactJwt, code, message) {
    var title = 'Confidant preview: authorize refused the Contact JWT (' + code + ')';
    var pointer =
      'Paste the token into "Test a token" on the messenger\'s Security tab (' + SERVER +
      '/admin/) to see each check and a hint.';
    function plain() {
      if (!window.console) return;
      console.groupCollapsed(title);
      console.warn(message);
      console.info(pointer);
      console.groupEnd();
    }
    if (location.origin !== SERVER || typeof fetch !== 'function') {
      plain();
      return Promise.resolve(false);
    }
    var path =
      '/api/v1/sites/' + encodeURIComponent(siteId) + '/messengers/' + encodeURIComponent(messengerId) + '/check-token';
    return fetch(SERVER + path, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ contactJwt: contactJwt }),
    })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(
        function (report) {
          if (!report || !report.checks) {
            plain();
            return false;
          }
          printReport(title, message, report);
          return true;
        },
        function () {
          plain();
          return false;
        },
      );
  }

  function printReport(title, message, report) {
    if (!window.console) return;
    console.groupCollapsed(title);
    console.warn(message);
    var rows = report.checks.map(function (row) {
      var result = row.ok === true ? '✓' : row.ok === false ? '✗' : 'not run';
      return { check: row.check, result: result, detail: row.detail };
    });
    if (console.table) console.table(rows);
    else console.log(rows);
    if (report.hint) console.info('Hint: ' + report.hint);
    console.log('header', report.header);
    console.log('claims', report.claims);
    console.groupEnd();
  }

  // ---------------------------------------------------------------------------------------
  // Session state. Everything about the current customer lives in `session`; shutdown() drops
  // it. Each init gets a new generation number so that late answers from an old session are
  // ignored (a new customer never sees the previous one's messenger).

  var session = null;
  var generation = 0;

  function current(gen) {
    return session && session.gen === gen ? session : null;
  }

  /**
   * Turn whatever we were given (Contact JWT or access token) into an access token.
   * Resolves with {token, exp} or rejects with {code, message}.
   */
  function toAccessToken(s, credential) {
    var payload = decodePayload(credential);
    if (!payload) {
      return Promise.reject({ code: 'token_malformed', message: 'The token given to Confidant is not a JWT.' });
    }
    if (isAccessToken(payload)) {
      if (!audienceMatches(payload, s.messengerId)) {
        return Promise.reject({ code: 'unauthorized', message: 'The access token was issued for another messenger.' });
      }
      return Promise.resolve({ token: credential, exp: Number(payload.exp) || 0 });
    }
    s.contactJwt = credential; // kept in memory only, to re-authorize when no getToken is given
    return authorize(s.siteId, s.messengerId, credential, s.preview).then(function (token) {
      var p = decodePayload(token) || {};
      return { token: token, exp: Number(p.exp) || 0 };
    });
  }

  function secondsLeft(exp) {
    return exp ? exp - Date.now() / 1000 : Infinity;
  }

  /** Obtain a fresh access token: getToken() if given, else re-authorize a kept Contact JWT. */
  function fetchFreshToken(s) {
    if (typeof s.getToken === 'function') {
      var result;
      try {
        result = Promise.resolve(s.getToken());
      } catch (e) {
        result = Promise.reject(e);
      }
      return result.then(
        function (credential) {
          if (typeof credential !== 'string' || !credential) {
            throw { code: 'unauthorized', message: 'getToken() did not return a token.' };
          }
          return toAccessToken(s, credential);
        },
        function (err) {
          if (err && err.code && err.message) throw err;
          // The business's own call failed (its backend may be briefly down): worth retrying.
          throw { code: 'unauthorized', retry: true, message: 'getToken() failed: ' + ((err && err.message) || String(err)) };
        },
      );
    }
    if (s.contactJwt) {
      var p = decodePayload(s.contactJwt);
      if (p && p.exp && secondsLeft(Number(p.exp)) <= 0) {
        return Promise.reject({
          code: 'token_expired',
          message: 'The session expired. Reload the page, or pass getToken to Confidant.init.',
        });
      }
      return toAccessToken(s, s.contactJwt);
    }
    return Promise.reject({
      code: 'token_expired',
      message: 'The session expired. Reload the page, or pass getToken to Confidant.init.',
    });
  }

  function useToken(s, result) {
    s.token = result.token;
    s.exp = result.exp;
    s.refreshAttempt = 0;
    postToFrame(s, { type: 'confidant:token', token: s.token });
    scheduleRefresh(s);
  }

  function scheduleRefresh(s) {
    clearTimeout(s.refreshTimer);
    s.refreshTimer = null;
    if (!s.exp) return;
    // Without getToken or a reusable Contact JWT nothing can renew the token: wait for expiry
    // itself, then report token_expired.
    var renewable = typeof s.getToken === 'function' || !!s.contactJwt;
    var delay = (s.exp - (renewable ? REFRESH_BEFORE_EXP_S : 0)) * 1000 - Date.now();
    delay = Math.min(Math.max(delay, MIN_REFRESH_DELAY_MS), MAX_TIMER_MS);
    var gen = s.gen;
    s.refreshTimer = setTimeout(function () {
      if (current(gen)) refresh(s);
    }, delay);
  }

  function refresh(s) {
    if (s.refreshing) return s.refreshing;
    var gen = s.gen;
    clearTimeout(s.refreshTimer);
    s.refreshing = fetchFreshToken(s).then(
      function (result) {
        if (!current(gen)) return;
        s.refreshing = null;
        useToken(s, result);
      },
      function (err) {
        if (!current(gen)) return;
        s.refreshing = null;
        var retryable =
          err && (err.retry || err.code === 'unavailable' || err.code === 'rate_limited' || err.code === 'jwks_unavailable');
        if (retryable && secondsLeft(s.exp) > 0) {
          s.refreshAttempt = (s.refreshAttempt || 0) + 1;
          var delay = Math.min(30000, 2000 * Math.pow(2, s.refreshAttempt - 1));
          s.refreshTimer = setTimeout(function () {
            if (current(gen)) refresh(s);
          }, delay);
          return;
        }
        emitError(err.code || 'unauthorized', err.message || 'The session could not be renewed.');
        postToFrame(s, { type: 'confidant:error', code: err.code || 'unauthorized', message: err.message || '' });
      },
    );
    return s.refreshing;
  }

  // ---------------------------------------------------------------------------------------
  // UI on the business page: a launcher button and a panel holding the iframe. Styles are set
  // through the CSSOM (element.style), which a page's CSP style-src does not block.

  function applyStyles(el, styles) {
    for (var key in styles) {
      if (Object.prototype.hasOwnProperty.call(styles, key)) el.style[key] = styles[key];
    }
  }

  var Z = '2147483000';
  var DEFAULT_COLOR = '#1f5fbf';

  /** White or near-black text, whichever reads better on `hex` (#rrggbb). */
  function textOn(hex) {
    var l = [1, 3, 5]
      .map(function (i) {
        var c = parseInt(hex.slice(i, i + 2), 16) / 255;
        return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4);
      })
      .reduce(function (sum, c, i) {
        return sum + c * [0.2126, 0.7152, 0.0722][i];
      }, 0);
    var dark = 0.0176; // the luminance of #1b2430
    return 1.05 / (l + 0.05) >= (l + 0.05) / (dark + 0.05) ? '#ffffff' : '#1b2430';
  }

  // A focus guard before and after the frame while the panel is modal (a phone's full
  // screen): Tab that leaves the frame lands on one and goes back into the frame, at the other
  // end (the frame itself also keeps Tab inside while it is modal).
  function focusGuard(s, where) {
    var guard = document.createElement('span');
    guard.tabIndex = -1;
    guard.setAttribute('data-confidant-focus-guard', where);
    applyStyles(guard, { position: 'absolute', width: '1px', height: '1px', overflow: 'hidden', opacity: '0' });
    guard.addEventListener('focus', function () {
      try {
        s.iframe.focus();
      } catch (e) {
        /* ignore */
      }
      postToFrame(s, { type: 'confidant:focus', where: where === 'start' ? 'last' : 'first' });
    });
    return guard;
  }

  function buildUi(s) {
    var launcher = document.createElement('button');
    launcher.type = 'button';
    launcher.setAttribute('aria-label', 'Open secure messages');
    launcher.setAttribute('aria-expanded', 'false');
    launcher.setAttribute('data-testid', 'confidant-launcher');
    var color = /^#[0-9a-f]{6}$/i.test(s.color || '') ? s.color : DEFAULT_COLOR;
    applyStyles(launcher, {
      position: 'fixed', right: '20px', bottom: '20px', zIndex: Z,
      display: 'inline-flex', alignItems: 'center', gap: '8px',
      padding: '12px 18px', border: '0', borderRadius: '999px',
      background: color, color: textOn(color), cursor: 'pointer',
      font: '600 15px/1.2 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif',
      boxShadow: '0 4px 14px rgba(16,24,40,0.25)',
    });
    var label = document.createElement('span');
    label.textContent = 'Secure messages';
    var badge = document.createElement('span');
    badge.setAttribute('data-testid', 'confidant-unread');
    applyStyles(badge, {
      display: 'none', minWidth: '20px', padding: '1px 6px', borderRadius: '999px',
      background: textOn(color), color: color, fontSize: '12px', fontWeight: '700', textAlign: 'center',
    });
    launcher.appendChild(label);
    launcher.appendChild(badge);

    var panel = document.createElement('div');
    panel.id = 'confidant-panel-' + s.gen;
    panel.setAttribute('role', 'dialog');
    panel.setAttribute('aria-label', s.title || 'Secure messages');
    applyStyles(panel, {
      position: 'fixed', zIndex: Z, display: 'none', overflow: 'hidden',
      background: '#ffffff', boxShadow: '0 8px 30px rgba(16,24,40,0.3)',
    });
    launcher.setAttribute('aria-controls', panel.id);

    var iframe = document.createElement('iframe');
    iframe.title = 'Secure messenger';
    iframe.src =
      SERVER + '/messenger/v1/frame?siteId=' + encodeURIComponent(s.siteId) + '&messengerId=' + encodeURIComponent(s.messengerId);
    iframe.setAttribute('data-testid', 'confidant-frame');
    applyStyles(iframe, { border: '0', width: '100%', height: '100%', display: 'block' });
    var guardStart = focusGuard(s, 'start');
    var guardEnd = focusGuard(s, 'end');
    panel.appendChild(guardStart);
    panel.appendChild(iframe);
    panel.appendChild(guardEnd);
    // Esc while focus is on the page's side of the panel (the frame handles its own).
    panel.addEventListener('keydown', function (event) {
      if (event.key === 'Escape' && s.open) setPanelOpen(s, false);
    });

    launcher.addEventListener('click', function () {
      setPanelOpen(s, !s.open);
    });
    iframe.addEventListener('load', function () {
      // The frame also says hello; posting on load covers a missed hello.
      if (s.token) postToFrame(s, { type: 'confidant:token', token: s.token });
    });

    var phone = window.matchMedia('(max-width: 480px)');
    s.layout = function () {
      // Full screen on a phone: a modal dialog (the page behind cannot be reached); beside
      // the page elsewhere: a non-modal one.
      var modal = phone.matches && s.open;
      if (modal) panel.setAttribute('aria-modal', 'true');
      else panel.removeAttribute('aria-modal');
      guardStart.tabIndex = modal ? 0 : -1;
      guardEnd.tabIndex = modal ? 0 : -1;
      if (s.modal !== modal) {
        s.modal = modal;
        if (s.open) postToFrame(s, { type: 'confidant:visibility', visible: true, modal: modal });
      }
      if (phone.matches) {
        applyStyles(panel, { left: '0', top: '0', right: '0', bottom: '0', width: '100%', height: '100%', borderRadius: '0' });
      } else {
        applyStyles(panel, {
          left: 'auto', top: 'auto', right: '20px', bottom: '84px',
          width: '380px', height: 'min(620px, calc(100vh - 110px))', borderRadius: '12px',
        });
      }
      launcher.style.display = phone.matches && s.open ? 'none' : 'inline-flex';
    };
    s.phone = phone;
    if (phone.addEventListener) phone.addEventListener('change', s.layout);
    s.layout();

    s.launcher = launcher;
    s.badge = badge;
    s.panel = panel;
    s.iframe = iframe;
    document.body.appendChild(panel);
    document.body.appendChild(launcher);
  }

  // Shows or hides the panel and tells the frame. Focus follows: into the frame on opening, back
  // to the launcher on closing when it was inside the panel.
  function setPanelOpen(s, open) {
    if (!s.panel) return;
    var hadFocus = s.panel.contains(document.activeElement);
    s.open = open;
    s.panel.style.display = open ? 'block' : 'none';
    s.launcher.setAttribute('aria-expanded', open ? 'true' : 'false');
    s.launcher.setAttribute('aria-label', open ? 'Close secure messages' : 'Open secure messages');
    s.layout();
    postToFrame(s, { type: 'confidant:visibility', visible: open, modal: !!s.modal });
    if (!open) {
      if (hadFocus) s.launcher.focus();
      return;
    }
    try {
      s.iframe.focus();
    } catch (e) {
      /* ignore */
    }
  }

  function setUnread(s, count) {
    s.unread = count;
    s.badge.textContent = count > 99 ? '99+' : String(count);
    s.badge.style.display = count > 0 ? 'inline-block' : 'none';
    s.launcher.setAttribute('aria-label', (s.open ? 'Close' : 'Open') + ' secure messages' + (count > 0 ? ', ' + count + ' unread' : ''));
  }

  // ---------------------------------------------------------------------------------------
  // postMessage bridge.

  function postToFrame(s, message) {
    if (!s.iframe || !s.iframe.contentWindow) return;
    s.iframe.contentWindow.postMessage(message, SERVER); // never '*': it may carry a token
  }

  function onFrameMessage(event) {
    var s = session;
    if (!s || !s.iframe) return;
    if (event.origin !== SERVER || event.source !== s.iframe.contentWindow) return;
    var data = event.data;
    if (!data || typeof data.type !== 'string') return;
    switch (data.type) {
      case 'confidant:hello':
        postToFrame(s, { type: 'confidant:visibility', visible: s.open, modal: !!s.modal });
        if (s.token) postToFrame(s, { type: 'confidant:token', token: s.token });
        break;
      case 'confidant:ready':
        if (!s.readyEmitted) {
          s.readyEmitted = true;
          emit('ready', { siteId: s.siteId, messengerId: s.messengerId });
        }
        break;
      case 'confidant:message':
        if (data.message && typeof data.message === 'object') emit('message', data.message);
        break;
      case 'confidant:unread':
        var count = Math.max(0, Number(data.count) || 0);
        if (count !== s.unread) {
          setUnread(s, count);
          emit('unread', count);
        }
        break;
      case 'confidant:error':
        emitError(String(data.code || 'unavailable'), String(data.message || ''));
        break;
      case 'confidant:need-token':
        refresh(s);
        break;
      case 'confidant:close':
        setPanelOpen(s, false);
        break;
      default:
        break;
    }
  }

  // ---------------------------------------------------------------------------------------
  // Page visibility: timers are throttled in background tabs and stop while a laptop sleeps,
  // so check the token whenever the page becomes visible again.

  function onVisibilityChange() {
    var s = session;
    if (!s || document.visibilityState !== 'visible' || !s.exp) return;
    if (secondsLeft(s.exp) < REFRESH_BEFORE_EXP_S) refresh(s);
  }

  // ---------------------------------------------------------------------------------------
  // Public API.

  function normalizeOptions(options) {
    var o = options || {};
    var siteId = typeof o.siteId === 'string' ? Number(o.siteId.trim()) : o.siteId;
    if (!Number.isInteger(siteId) || siteId <= 0) {
      throw { code: 'invalid_request', message: 'Confidant.init: siteId must be a positive integer.' };
    }
    var messengerId = typeof o.messengerId === 'string' ? o.messengerId.trim() : '';
    if (!/^[0-9a-fA-F-]{36}$/.test(messengerId)) {
      throw { code: 'invalid_request', message: 'Confidant.init: messengerId must be a UUID.' };
    }
    if (o.getToken !== undefined && typeof o.getToken !== 'function') {
      throw { code: 'invalid_request', message: 'Confidant.init: getToken must be a function.' };
    }
    return {
      siteId: siteId,
      messengerId: messengerId,
      contactJwt: o.contactJwt || null,
      accessToken: o.accessToken || null,
      getToken: o.getToken || null,
      preview: o.preview === true || o.preview === 'true',
    };
  }

  function firstToken(s, opts) {
    if (opts.accessToken) {
      var p = decodePayload(opts.accessToken);
      var expiring = p && p.exp && secondsLeft(Number(p.exp)) < REFRESH_BEFORE_EXP_S;
      if (!(expiring && s.getToken)) return toAccessToken(s, opts.accessToken);
    }
    if (opts.contactJwt) return toAccessToken(s, opts.contactJwt);
    if (s.getToken) return fetchFreshToken(s);
    return Promise.reject({
      code: 'unauthorized',
      message: 'Confidant.init needs a contactJwt, an accessToken or a getToken function.',
    });
  }

  function init(options) {
    var opts;
    try {
      opts = normalizeOptions(options);
    } catch (err) {
      emitError(err.code, err.message);
      return Promise.resolve(false);
    }
    if (session) shutdown(); // a new init replaces the previous customer entirely

    generation += 1;
    var gen = generation;
    var s = {
      gen: gen,
      siteId: opts.siteId,
      messengerId: opts.messengerId,
      getToken: opts.getToken,
      preview: opts.preview,
      contactJwt: null,
      token: null,
      exp: 0,
      open: false,
      unread: 0,
      readyEmitted: false,
      refreshTimer: null,
      refreshing: null,
      refreshAttempt: 0,
    };
    session = s;

    return fetchConfig(s.siteId, s.messengerId)
      .then(function (config) {
        if (!current(gen)) return false;
        // A preview on the server's own origin (the admin pages) needs no allowed URL.
        var ownPreview = s.preview && location.origin === SERVER;
        if (!ownPreview && !pageIsAllowed(config && config.allowedUrls, location.href)) {
          throw {
            code: 'origin_not_allowed',
            message: 'This page (' + location.origin + location.pathname + ") is not among the messenger's allowed URLs.",
          };
        }
        s.color = config && config.color;
        s.title = config && config.title;
        return firstToken(s, opts).then(function (result) {
          if (!current(gen)) return false;
          buildUi(s);
          useToken(s, result);
          if (s.wantOpen) setPanelOpen(s, true);
          return true;
        });
      })
      .catch(function (err) {
        if (!current(gen)) return false;
        var code = (err && err.code) || 'unavailable';
        var message = (err && err.message) || 'The messenger could not start.';
        if (s.preview && s.contactJwt && TOKEN_CODES.indexOf(code) >= 0) {
          explainInConsole(s.siteId, s.messengerId, s.contactJwt, code, message);
        }
        // Nothing was shown; forget the session so a later init starts clean.
        shutdown();
        emitError(code, message);
        return false;
      });
  }

  function shutdown() {
    var s = session;
    session = null;
    generation += 1; // any answer still in flight now belongs to a dead session
    if (!s) return;
    clearTimeout(s.refreshTimer);
    postToFrame(s, { type: 'confidant:shutdown' });
    if (s.phone && s.phone.removeEventListener) s.phone.removeEventListener('change', s.layout);
    if (s.panel && s.panel.parentNode) s.panel.parentNode.removeChild(s.panel);
    if (s.launcher && s.launcher.parentNode) s.launcher.parentNode.removeChild(s.launcher);
    s.token = null;
    s.contactJwt = null;
    s.getToken = null;
    s.iframe = null;
    s.panel = null;
    s.launcher = null;
  }

  function on(name, fn) {
    if (!listeners[name]) throw new Error('Confidant.on: unknown event "' + name + '" (use ' + EVENTS.join(', ') + ')');
    if (typeof fn !== 'function') throw new Error('Confidant.on: the listener must be a function');
    listeners[name].push(fn);
    return function off() {
      offFn(name, fn);
    };
  }

  function offFn(name, fn) {
    if (!listeners[name]) return;
    listeners[name] = listeners[name].filter(function (f) {
      return f !== fn;
    });
  }

  window.addEventListener('message', onFrameMessage);
  document.addEventListener('visibilitychange', onVisibilityChange);

  var api = {
    version: VERSION,
    init: init,
    shutdown: shutdown,
    open: function () {
      if (!session) return;
      session.wantOpen = true; // honoured once the messenger is built
      setPanelOpen(session, true);
    },
    close: function () {
      if (!session) return;
      session.wantOpen = false;
      setPanelOpen(session, false);
    },
    on: on,
    off: offFn,
  };
  try {
    Object.defineProperty(window, 'Confidant', { value: Object.freeze(api), writable: false, configurable: false });
  } catch (e) {
    window.Confidant = api;
  }

  // ---------------------------------------------------------------------------------------
  // Auto start: the installation snippet's data attributes, then window.ConfidantSettings.

  function settingsFromDom() {
    var el = document.getElementById('confidant-messenger');
    if (!el) return {};
    var d = el.dataset;
    var out = {};
    if (d.siteId) out.siteId = d.siteId;
    if (d.messengerId) out.messengerId = d.messengerId;
    if (d.contactJwt) out.contactJwt = d.contactJwt;
    if (d.accessToken) out.accessToken = d.accessToken;
    if (d.preview) out.preview = d.preview === 'true';
    return out;
  }

  function autoStart() {
    var fromDom = settingsFromDom();
    var fromWindow = window.ConfidantSettings && typeof window.ConfidantSettings === 'object' ? window.ConfidantSettings : {};
    var settings = {};
    var key;
    for (key in fromDom) settings[key] = fromDom[key];
    for (key in fromWindow) if (fromWindow[key] !== undefined && fromWindow[key] !== null && fromWindow[key] !== '') settings[key] = fromWindow[key];
    var hasCredential = settings.contactJwt || settings.accessToken || typeof settings.getToken === 'function';
    if (settings.siteId && settings.messengerId && hasCredential && !session) init(settings);
  }

  function start() {
    autoStart();
    try {
      window.dispatchEvent(new CustomEvent('confidant:loaded', { detail: { version: VERSION } }));
    } catch (e) {
      /* ignore */
    }
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
