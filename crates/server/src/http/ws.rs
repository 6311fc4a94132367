//! Live events over WebSockets (CONTRACT §7).
//!
//! One task per socket: it authenticates the first frame, then selects over the client's
//! frames, its hub subscription, a ping interval, the token's expiry, its agent session's end
//! and shutdown. The hub never waits for this task; if it falls behind it is told to resync.
//!
//! Every send goes through [`Link`]: it checks the agent's session first (nothing is pushed
//! after a logout), races the session's end (a socket stuck in a send to a client that stopped
//! reading still closes at once on logout), and gives up after [`SEND_TIMEOUT`] (the socket
//! is dropped). Agent sockets also re-check their session in the store every
//! [`RECHECK_EVERY`], and when the hub says notices may have been lost.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::response::Response;
use confidant_core::time_fmt::now_millis;
use confidant_core::{ContactScope, ConversationId, SiteId};
use confidant_realtime::{Recv, SessionNews, SessionWatch, Topic};
use serde::Deserialize;

use crate::api::frames::{ClientFrame, Party, Seq, ServerFrame};
use crate::api::{self, ErrorBody};
use crate::app::{App, AppState};
use crate::error::{ApiError, ApiResult};
use crate::http::auth::{check_own_origin, origin};
use crate::http::extract::ApiQuery;
use crate::service::accounts::Principal;
use crate::service::conversations::Viewer;
use crate::service::lifecycle::contact_session_key;
use crate::service::messengers::messenger_session_key;
use crate::socket_caps::{Holder, Slot};

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(25);
/// A peer silent for this long (no frame, no pong) is closed.
const DEAD_AFTER: Duration = Duration::from_secs(60);
/// A send to the client that has not completed after this long drops the socket (CONTRACT §5:
/// a client that stopped reading).
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing socket may take to send its close frame before the connection drops.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(500);
/// Agent sockets re-check their session in the store this often, a backstop to the notices.
const RECHECK_EVERY: Duration = Duration::from_secs(60);
/// The largest client frame (and message) taken: the largest legitimate one is a send with a
/// 10,000-character body (at most 40 KB of UTF-8) in its JSON frame. Larger: close 1009.
pub const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// The read buffer each socket starts with (see [`sized`]).
const READ_BUFFER: usize = 512;
const CLOSE_AUTH: u16 = 4401;
const CLOSE_ORIGIN: u16 = 4403;
/// RFC 6455 "message too big".
const CLOSE_TOO_BIG: u16 = 1009;
/// The contact or agent session holds its cap of open sockets already (socket_caps.rs).
const CLOSE_TOO_MANY: u16 = 4429;
/// The Retry-After of an upgrade refused by the per-address cap.
const RETRY_FULL_SECONDS: u64 = 10;
/// How many conversations' positions one socket remembers (agents see a whole site).
const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Contact,
    Agent,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::Contact => "contact",
            Side::Agent => "agent",
        }
    }
}

/// Who the socket speaks for, fixed by its first auth frame.
#[derive(Clone, PartialEq, Eq)]
enum Who {
    Contact(ContactScope),
    Agent {
        site: SiteId,
        id: String,
        name: String,
        token_hash: String,
    },
}

impl Who {
    fn viewer(&self) -> Viewer {
        match self {
            Who::Contact(scope) => Viewer::Contact(*scope),
            Who::Agent { site, .. } => Viewer::Agents(*site),
        }
    }

    /// A refreshed token must name the same contact (in the same messenger) or agent.
    fn same_subject(&self, other: &Who) -> bool {
        match (self, other) {
            (Who::Contact(a), Who::Contact(b)) => a == b,
            (Who::Agent { id: a, .. }, Who::Agent { id: b, .. }) => a == b,
            _ => false,
        }
    }

    fn party(&self, name: Option<String>) -> Party {
        match self {
            Who::Contact(scope) => Party {
                kind: "contact",
                id: scope.contact.to_string(),
                name,
            },
            Who::Agent { id, .. } => Party {
                kind: "agent",
                id: id.clone(),
                name,
            },
        }
    }
}

struct Authed {
    who: Who,
    /// Unix seconds after which the socket must have a fresh token.
    expires_at: i64,
    /// Agent sockets: when (Unix ms) the session ends if nothing more happens, as far as this
    /// socket knows; then it asks the store, which knows of activity on every process
    /// (CONTRACT §12's idle timeout). `None` on contact sockets.
    idle_deadline: Option<i64>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
pub struct SocketQuery {
    /// With `messengerId`: check the page's origin before the upgrade.
    site_id: Option<String>,
    messenger_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/messenger/ws", tag = "contact", params(SocketQuery),
    responses((status = 101, description = "WebSocket; the first frame is {\"type\":\"auth\",\"token\":\"<access token>\"}"),
              (status = 403, body = ErrorBody, description = "origin_not_allowed")))]
pub async fn contact_ws(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<SocketQuery>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = upgrade(ws)?;
    let slot = address_slot(&app, peer, &headers)?;
    let origin = origin(&headers)?.map(str::to_owned);
    // A socket that names its messenger in the URL is checked before the upgrade; otherwise
    // after its auth frame (the messenger is in the token).
    if let Some(o) = &origin
        && q.site_id.is_some()
        && q.messenger_id.is_some()
    {
        let m = app
            .messengers
            .named(q.site_id.as_deref(), q.messenger_id.as_deref())
            .await?;
        if *o != app.config.public_url && !m.allows_origin(o) {
            return Err(ApiError::origin_not_allowed());
        }
    }
    Ok(sized(ws).on_upgrade(move |socket| run(app.0, socket, Side::Contact, origin, slot)))
}

#[utoipa::path(get, path = "/api/v1/agent/ws", tag = "agent",
    responses((status = 101, description = "WebSocket; the first frame is {\"type\":\"auth\",\"token\":\"<session token>\"}"),
              (status = 403, body = ErrorBody, description = "origin_not_allowed")))]
pub async fn agent_ws(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> ApiResult<Response> {
    let ws = upgrade(ws)?;
    let slot = address_slot(&app, peer, &headers)?;
    check_own_origin(&app, &headers)?;
    let origin = origin(&headers)?.map(str::to_owned);
    Ok(sized(ws).on_upgrade(move |socket| run(app.0, socket, Side::Agent, origin, slot)))
}

/// The socket's place under its client address's cap (the address the rate limits key on:
/// the peer, or what a trusted proxy says; IPv6 by /64), or `429 rate_limited`.
fn address_slot(app: &App, peer: SocketAddr, headers: &HeaderMap) -> ApiResult<Slot> {
    app.sockets
        .take(Holder::Address(app.limits.client_key(peer.ip(), headers)))
        .ok_or_else(|| ApiError::rate_limited(RETRY_FULL_SECONDS))
}

/// A request that is not a WebSocket upgrade (no upgrade headers, a bad `Sec-WebSocket-Key` or
/// version) is `400 invalid_request` with the JSON body, like every other bad request.
fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    ws.map_err(|e| ApiError::invalid(format!("not a WebSocket upgrade: {}", e.body_text())))
}

/// Frame limits and buffers. tungstenite's default 128 KiB read buffer per socket would make
/// idle sockets cost >100 KB each; frames here are small JSON (an auth frame with its token is
/// ~500 bytes), so [`READ_BUFFER`] suffices: a larger frame is read into a buffer of its own
/// length (tungstenite reserves it once from the frame's header). 512 bytes instead of 4 KiB
/// took ~2.6 KB off each idle socket (session 10).
fn sized(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

/// Whether a read failed on a frame or message over [`MAX_CLIENT_FRAME`].
fn too_big(e: &axum::Error) -> bool {
    use tungstenite::Error;
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<Error>())
        .is_some_and(|e| matches!(e, Error::Capacity(_)))
}

/// Why a socket stops after a send did not go through.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// The client went away.
    Gone,
    /// A send did not complete within [`SEND_TIMEOUT`]: the client stopped reading.
    Stalled,
    /// The agent's session ended.
    LoggedOut,
}

impl Stop {
    /// The close frame to try, if any (a stalled or gone client gets none).
    fn close(self) -> Option<(u16, &'static str)> {
        match self {
            Stop::LoggedOut => Some((CLOSE_AUTH, "logged out")),
            Stop::Gone | Stop::Stalled => None,
        }
    }
}

/// The socket as its task writes to it: every send is bounded in time and races the end of
/// the agent's session (see the module's doc).
struct Link {
    socket: WebSocket,
    /// The agent socket's session; on a contact socket, its contact's erasure
    /// ([`contact_session_key`]).
    session: Option<SessionWatch>,
    /// On a contact socket: its messenger's deletion ([`messenger_session_key`]).
    messenger: Option<SessionWatch>,
    /// Set by the first send that did not go through; nothing is sent after it.
    stop: Option<Stop>,
}

impl Link {
    async fn send(&mut self, message: Message) -> bool {
        if self.stop.is_some() {
            return false;
        }
        if self.session.as_ref().is_some_and(SessionWatch::has_ended) {
            self.stop = Some(Stop::LoggedOut);
            return false;
        }
        let Link {
            socket, session, ..
        } = self;
        let outcome = tokio::select! {
            biased;
            _ = session_end(session) => Err(Stop::LoggedOut),
            sent = tokio::time::timeout(SEND_TIMEOUT, socket.send(message)) => match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(_)) => Err(Stop::Gone),
                Err(_) => {
                    metrics::counter!("confidant_ws_stalled_total").increment(1);
                    Err(Stop::Stalled)
                }
            },
        };
        match outcome {
            Ok(()) => true,
            Err(stop) => {
                self.stop = Some(stop);
                false
            }
        }
    }

    async fn frame(&mut self, frame: &ServerFrame<'_>) -> bool {
        self.send(Message::Text(Utf8Bytes::from(frame.to_json())))
            .await
    }

    async fn error(&mut self, code: &'static str, message: &str) -> bool {
        self.frame(&ServerFrame::Error { code, message }).await
    }

    /// Try a close frame for a short while; the connection is dropped after it either way.
    async fn close(&mut self, code: u16, reason: &str) {
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.to_owned()),
        }));
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, self.socket.send(frame)).await;
    }

    /// Watch `token_hash`'s session from now on; `false` when it has already ended (the store
    /// is checked after the watch starts, so an end in between is not missed).
    async fn watch_session(&mut self, app: &App, token_hash: &str) -> bool {
        if self
            .session
            .as_ref()
            .is_some_and(|s| s.token_hash() == token_hash)
        {
            return true;
        }
        self.session = Some(app.hub.watch_session(token_hash));
        session_live(app, token_hash).await
    }
}

impl Link {
    /// Watch the contact's erasure from now on; `false` when it is erased already (checked
    /// after the watch starts, so an erasure in between is not missed).
    async fn watch_contact(&mut self, app: &App, scope: &ContactScope) -> bool {
        self.session = Some(app.hub.watch_session(&contact_session_key(scope.contact)));
        self.messenger = Some(
            app.hub
                .watch_session(&messenger_session_key(scope.messenger)),
        );
        contact_live(app, scope).await
    }
}

/// Whether the socket's contact and its messenger still exist. A store that does not answer
/// counts as yes for now: the socket asks again at the next re-check.
async fn contact_live(app: &App, scope: &ContactScope) -> bool {
    let messenger = app
        .messengers
        .compiled(scope.site, scope.messenger)
        .await
        .map_or(true, |m| m.is_some());
    messenger
        && app
            .contacts
            .live(scope.site, scope.contact)
            .await
            .unwrap_or(true)
}

/// Resolves when the agent socket's session ends (a contact socket's contact is erased).
async fn session_end(session: &mut Option<SessionWatch>) {
    match session {
        Some(s) => s.ended().await,
        None => std::future::pending().await,
    }
}

/// The agent socket's session news; never on a contact socket.
async fn session_news(session: &mut Option<SessionWatch>) -> SessionNews {
    match session {
        Some(s) => s.news().await,
        None => std::future::pending().await,
    }
}

/// Whether the session is still in the store. A store that does not answer counts as live for
/// now: the socket asks again at the next re-check.
async fn session_live(app: &App, token_hash: &str) -> bool {
    app.accounts.session_live(token_hash).await.unwrap_or(true)
}

async fn authenticate(
    app: &App,
    side: Side,
    origin: Option<&str>,
    token: &str,
) -> Result<Authed, (u16, &'static str)> {
    match side {
        Side::Contact => {
            let session = app
                .access
                .contact(&app.messengers, &app.contacts, token)
                .await
                .map_err(|_| (CLOSE_AUTH, "invalid or expired token"))?;
            if let Some(o) = origin
                && o != app.config.public_url
                && !session.messenger.allows_origin(o)
            {
                return Err((CLOSE_ORIGIN, "origin not allowed"));
            }
            Ok(Authed {
                expires_at: session.expires_at,
                who: Who::Contact(session.scope),
                idle_deadline: None,
            })
        }
        Side::Agent => match app.accounts.authenticate_socket(token).await {
            Ok(Principal::Agent {
                setup_only: true, ..
            }) => Err((
                CLOSE_ORIGIN,
                "this site requires two-factor authentication: set it up first",
            )),
            Ok(Principal::Agent {
                agent,
                token_hash,
                expires_at,
                idle_deadline,
                ..
            }) => Ok(Authed {
                expires_at: expires_at / 1000,
                idle_deadline: Some(idle_deadline),
                who: Who::Agent {
                    site: agent.site_id,
                    id: agent.agent_id.to_string(),
                    name: agent.name,
                    token_hash,
                },
            }),
            // The operator watches no site in particular: it logs in as an agent instead.
            Ok(Principal::Operator) => Err((
                CLOSE_AUTH,
                "the operator token cannot open an agent socket; log in as an agent",
            )),
            Err(_) => Err((CLOSE_AUTH, "invalid or ended session")),
        },
    }
}

async fn run(app: Arc<App>, socket: WebSocket, side: Side, origin: Option<String>, _address: Slot) {
    let mut link = Link {
        socket,
        session: None,
        messenger: None,
        stop: None,
    };
    // 1. The first frame authenticates, within 10 seconds (control frames do not count).
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let token = loop {
        match tokio::time::timeout_at(deadline, link.socket.recv()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(&t) {
                Ok(ClientFrame::Auth { token }) => break Some(token),
                _ => break None,
            },
            Ok(Some(Err(e))) if too_big(&e) => {
                return link.close(CLOSE_TOO_BIG, "frames are at most 64 KiB").await;
            }
            Ok(_) => break None,
            Err(_) => {
                return link
                    .close(CLOSE_AUTH, "no auth frame within 10 seconds")
                    .await;
            }
        }
    };
    let Some(token) = token else {
        return link.close(CLOSE_AUTH, "the first frame must be auth").await;
    };
    // The deep awaits that run once or rarely (authentication, store look-ups, a client's
    // frame, a gap fill) are boxed: a task's future is allocated whole at its largest state,
    // so unboxed every idle socket carried room for them (~2 KB, session 10).
    let mut authed = match Box::pin(authenticate(&app, side, origin.as_deref(), &token)).await {
        Ok(a) => a,
        Err((code, why)) => return link.close(code, why).await,
    };
    let holder = match &authed.who {
        Who::Contact(scope) => Holder::Contact(scope.contact),
        Who::Agent { token_hash, .. } => Holder::Session(token_hash.clone()),
    };
    let Some(_holder) = app.sockets.take(holder) else {
        let why = match side {
            Side::Contact => "too many open sockets for this contact",
            Side::Agent => "too many open sockets for this session",
        };
        return link.close(CLOSE_TOO_MANY, why).await;
    };
    // A contact's socket counts as its presence for offline notices (previews get none).
    let _here = match &authed.who {
        Who::Contact(scope) if !scope.preview => {
            Some(app.notices.presence.enter(scope.site, scope.contact))
        }
        _ => None,
    };
    let topic = match &authed.who {
        Who::Contact(scope) => {
            if !Box::pin(link.watch_contact(&app, scope)).await {
                return link.close(CLOSE_AUTH, "the contact no longer exists").await;
            }
            Topic::Contact(scope.contact.to_string())
        }
        Who::Agent {
            site, token_hash, ..
        } => {
            if !Box::pin(link.watch_session(&app, token_hash)).await {
                return link.close(CLOSE_AUTH, "logged out").await;
            }
            Topic::Site(site.0)
        }
    };
    let mut sub = app.hub.subscribe(topic);
    let mut shutdown = app.shutdown.clone();
    let ready = ServerFrame::Ready {
        expires_at: Some(authed.expires_at),
    };
    if !link.frame(&ready).await {
        return finish(&mut link, None).await;
    }
    metrics::gauge!("confidant_ws_connections", "side" => side.label()).increment(1.0);
    let mut conn = Conn {
        app: app.clone(),
        sent: HashMap::new(),
    };
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.tick().await;
    let mut last_heard = tokio::time::Instant::now();

    let reason = loop {
        if let Some(stop) = link.stop {
            break stop.close();
        }
        let expiry = expiry_instant(authed.expires_at);
        let idle = authed.idle_deadline.map_or(far_future(), instant_at_ms);
        tokio::select! {
            frame = link.socket.recv() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(t))) => {
                        if let Err((code, why)) = Box::pin(conn.client_frame(&mut link, side, origin.as_deref(), &mut authed, &t)).await {
                            break Some((code, why));
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        link.error("invalid_request", "frames are JSON text").await;
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Err(e)) if too_big(&e) => break Some((CLOSE_TOO_BIG, "frames are at most 64 KiB")),
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break None,
                }
            }
            ev = sub.recv() => {
                if !conn.hub_event(&mut link, &authed.who, ev).await && link.stop.is_none() {
                    break None;
                }
            }
            news = session_news(&mut link.session) => {
                if news == SessionNews::Ended || !Box::pin(conn.session_still_live(&authed.who)).await {
                    break Stop::LoggedOut.close();
                }
            }
            _ = session_end(&mut link.messenger) => break Some((CLOSE_AUTH, "the messenger was deleted")),
            _ = recheck.tick() => {
                if !Box::pin(conn.session_still_live(&authed.who)).await { break Stop::LoggedOut.close(); }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER { break None; }
                link.send(Message::Ping(Default::default())).await;
            }
            _ = tokio::time::sleep_until(expiry) => break Some((CLOSE_AUTH, "the token expired")),
            _ = tokio::time::sleep_until(idle) => {
                let Who::Agent { token_hash, .. } = &authed.who else { continue };
                match Box::pin(app.accounts.idle_deadline(token_hash)).await {
                    Ok(Some(at)) => authed.idle_deadline = Some(at),
                    Ok(None) => break Some((CLOSE_AUTH, "the session ended (idle)")),
                    // The store does not answer: ask again shortly.
                    Err(_) => authed.idle_deadline = Some(now_millis() + 5_000),
                }
            }
            _ = shutdown.changed() => break Some((1001, "the server is restarting")),
        }
    };
    finish(&mut link, reason).await;
    metrics::gauge!("confidant_ws_connections", "side" => side.label()).decrement(1.0);
}

/// Close with `reason` if there is one (briefly: a client that stopped reading does not hold
/// the task), then the connection drops with the task.
async fn finish(link: &mut Link, reason: Option<(u16, &'static str)>) {
    if let Some((code, why)) = reason {
        link.close(code, why).await;
    }
}

/// The instant of Unix time `at_ms` (now, if it has passed).
fn instant_at_ms(at_ms: i64) -> tokio::time::Instant {
    let left = (at_ms - now_millis()).max(0).unsigned_abs();
    tokio::time::Instant::now() + Duration::from_millis(left)
}

/// An instant that never comes in a socket's life.
fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

fn expiry_instant(expires_at: i64) -> tokio::time::Instant {
    let left = (expires_at - now_millis() / 1000).max(0).unsigned_abs();
    tokio::time::Instant::now() + Duration::from_secs(left)
}

struct Conn {
    app: Arc<App>,
    /// Per conversation, the run of seqs `first..=last` this socket has sent: later events in
    /// it are repeats (after a resume), a jump past `last` is a gap to fill from the store, and
    /// a resume from before `first` sends only what lies before it.
    sent: HashMap<ConversationId, Run>,
}

#[derive(Clone, Copy)]
struct Run {
    first: i64,
    last: i64,
}

impl Conn {
    async fn client_frame(
        &mut self,
        link: &mut Link,
        side: Side,
        origin: Option<&str>,
        authed: &mut Authed,
        text: &str,
    ) -> Result<(), (u16, &'static str)> {
        let frame = match serde_json::from_str::<ClientFrame>(text) {
            Ok(f) => f,
            Err(e) => {
                let why = if e.is_data() {
                    "unknown frame type, or a field of the wrong type"
                } else {
                    "frames are JSON objects"
                };
                link.error("invalid_request", why).await;
                return Ok(());
            }
        };
        // What the agent does on its socket keeps its session from idling out; the pings that
        // the page sends by itself do not (an unattended console must idle out), and an auth
        // frame counts through its own authentication.
        if !matches!(frame, ClientFrame::Ping | ClientFrame::Auth { .. })
            && let Who::Agent { token_hash, .. } = &authed.who
        {
            let _ = self.app.accounts.touch(token_hash).await;
        }
        let viewer = authed.who.viewer();
        let conversation = |id: &str| id.parse::<ConversationId>().ok();
        match frame {
            ClientFrame::Auth { token } => {
                let fresh = authenticate(&self.app, side, origin, &token).await?;
                if !fresh.who.same_subject(&authed.who) {
                    return Err((CLOSE_AUTH, "the new token names someone else"));
                }
                if let Who::Agent { token_hash, .. } = &fresh.who
                    && !link.watch_session(&self.app, token_hash).await
                {
                    return Err((CLOSE_AUTH, "logged out"));
                }
                *authed = fresh;
                let ready = ServerFrame::Ready {
                    expires_at: Some(authed.expires_at),
                };
                link.frame(&ready).await;
            }
            ClientFrame::Resume {
                conversation_id,
                after_seq: Seq(after),
            } => {
                let visible = match conversation(&conversation_id) {
                    Some(id) => self.app.conversations.visible(&viewer, id).await.ok(),
                    None => None,
                };
                match visible {
                    Some(conv) => {
                        self.resume(link, &viewer, conv.conversation_id, after)
                            .await
                    }
                    None => {
                        link.error("not_found", "conversation not found").await;
                    }
                }
            }
            ClientFrame::Typing { conversation_id } => {
                let Some(id) = conversation(&conversation_id) else {
                    return Ok(());
                };
                let name = match &authed.who {
                    Who::Contact(scope) => self
                        .app
                        .contacts
                        .name(scope.site, scope.contact)
                        .await
                        .ok()
                        .map(|n| n.to_string()),
                    Who::Agent { name, .. } => Some(name.clone()),
                };
                let _ = self
                    .app
                    .conversations
                    .typing(&viewer, authed.who.party(name), id)
                    .await;
            }
            ClientFrame::Read {
                conversation_id,
                seq: Seq(seq),
            } => {
                if let Some(id) = conversation(&conversation_id) {
                    let _ = self
                        .app
                        .conversations
                        .mark_read(&viewer, authed.who.party(None), id, seq)
                        .await;
                }
            }
            ClientFrame::Ping => {
                link.frame(&ServerFrame::Pong).await;
            }
        }
        Ok(())
    }

    /// The re-check of an agent socket's session in the store (of a contact socket: that its
    /// contact was not erased).
    async fn session_still_live(&self, who: &Who) -> bool {
        match who {
            Who::Agent { token_hash, .. } => session_live(&self.app, token_hash).await,
            Who::Contact(scope) => contact_live(&self.app, scope).await,
        }
    }

    /// Send what the client missed after `after`, then go on live.
    async fn resume(&mut self, link: &mut Link, viewer: &Viewer, id: ConversationId, after: i64) {
        let run = match self.sent.get(&id).copied() {
            // What lies before the run was never sent on this socket.
            Some(r) if after + 1 < r.first => {
                match self.send_stored(link, viewer, id, after, r.first - 1).await {
                    Some(_) => Run {
                        first: after + 1,
                        last: r.last,
                    },
                    None => return,
                }
            }
            // The client claims more than this socket sent (e.g. read over REST).
            Some(r) => Run {
                first: r.first.min(after + 1),
                last: r.last.max(after),
            },
            None => Run {
                first: after + 1,
                last: after,
            },
        };
        self.track(id, run);
        self.fill(link, viewer, id, i64::MAX).await;
    }

    fn track(&mut self, conv: ConversationId, run: Run) {
        if self.sent.len() >= MAX_TRACKED && !self.sent.contains_key(&conv) {
            self.sent.clear();
        }
        self.sent.insert(conv, run);
    }

    /// Send the stored messages of `conv` with `after < seq <= upto`, in order. Returns the
    /// last seq sent (`after` when none), or `None` if the socket failed.
    async fn send_stored(
        &mut self,
        link: &mut Link,
        viewer: &Viewer,
        conv: ConversationId,
        mut after: i64,
        upto: i64,
    ) -> Option<i64> {
        while after < upto {
            let Ok(page) = self
                .app
                .conversations
                .messages_unchecked(viewer.site(), conv, after, 200)
                .await
            else {
                return Some(after);
            };
            if page.is_empty() {
                break;
            }
            for m in page.iter().take_while(|m| m.seq <= upto) {
                let message = api::Message::from(m);
                if !link
                    .frame(&ServerFrame::Message { message: &message })
                    .await
                {
                    return None;
                }
                after = m.seq;
            }
            if page.last().is_some_and(|m| m.seq > upto) {
                break;
            }
        }
        Some(after)
    }

    /// Send the stored messages of `conv` after the run this socket has sent, up to `upto`.
    async fn fill(
        &mut self,
        link: &mut Link,
        viewer: &Viewer,
        conv: ConversationId,
        upto: i64,
    ) -> bool {
        let Some(run) = self.sent.get(&conv).copied() else {
            return true;
        };
        match self.send_stored(link, viewer, conv, run.last, upto).await {
            Some(last) => {
                self.track(conv, Run { last, ..run });
                true
            }
            None => false,
        }
    }

    async fn hub_event(&mut self, link: &mut Link, who: &Who, ev: Recv) -> bool {
        match ev {
            Recv::Event(e) => {
                // A contact sees only the conversations of its token's messenger and kind.
                if let Who::Contact(scope) = who
                    && !e
                        .messenger_id
                        .parse()
                        .is_ok_and(|m| scope.hears(m, e.preview))
                {
                    return true;
                }
                if e.seq > 0 {
                    let Ok(conv) = e.conversation_id.parse::<ConversationId>() else {
                        return true;
                    };
                    match self.sent.get(&conv).copied() {
                        Some(r) if e.seq <= r.last => return true,
                        Some(r) if e.seq > r.last + 1 => {
                            // A gap (a lagged queue, a lost or late bus message): fill it from the store.
                            return Box::pin(self.fill(link, &who.viewer(), conv, e.seq)).await;
                        }
                        Some(r) => self.track(conv, Run { last: e.seq, ..r }),
                        None => self.track(
                            conv,
                            Run {
                                first: e.seq,
                                last: e.seq,
                            },
                        ),
                    }
                    metrics::histogram!("confidant_push_latency_seconds")
                        .record((now_millis() - e.sent_at_ms).max(0) as f64 / 1000.0);
                }
                link.send(Message::Text(Utf8Bytes::from(e.frame.to_string())))
                    .await
            }
            Recv::Lagged(_) => {
                // Events were dropped: messages of conversations with later events are filled
                // from the store (the runs stay, so nothing is sent twice), but others, and
                // typing/read/conversation events, are lost: the client resumes what it shows.
                link.frame(&ServerFrame::Resync {
                    conversation_id: None,
                })
                .await
            }
            Recv::Closed => false,
        }
    }
}
