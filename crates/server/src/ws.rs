//! Live events over WebSockets (CONTRACT §7).
//!
//! One task per socket: it authenticates the first frame, then selects over the client's
//! frames, its hub subscription, a ping interval, the token's expiry and shutdown. The hub
//! never waits for this task; if it falls behind it is told to resync.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use confidant_core::SiteId;
use confidant_realtime::{Control, Recv, Topic};
use serde_json::{Value, json};

use crate::app::{App, AppState, now_millis, now_secs};
use crate::auth::{Principal, authenticate, authenticate_contact, origin};
use crate::error::ApiError;
use crate::routes::conversations::{contact_name, mark_read, publish_other};
use crate::views;

const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
const PING_EVERY: Duration = Duration::from_secs(25);
/// A peer silent for this long (no frame, no pong) is closed.
const DEAD_AFTER: Duration = Duration::from_secs(60);
const CLOSE_AUTH: u16 = 4401;
const CLOSE_ORIGIN: u16 = 4403;
/// How many conversations' positions one socket remembers (agents see a whole site).
const MAX_TRACKED: usize = 10_000;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Contact,
    Agent,
}

/// Who the socket speaks for, fixed by its first auth frame.
#[derive(Clone, PartialEq, Eq)]
enum Who {
    Contact {
        site: SiteId,
        contact_id: String,
        messenger_id: String,
        preview: bool,
    },
    Agent {
        site: Option<SiteId>,
        id: String,
        name: String,
        token_hash: Option<String>,
    },
}

struct Authed {
    who: Who,
    /// Unix seconds after which the socket must have a fresh token.
    expires_at: Option<i64>,
}

pub async fn contact_ws(
    State(app): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
    ws: WebSocketUpgrade,
) -> Response {
    // A socket that names its messenger in the URL is checked before the upgrade; otherwise
    // after its auth frame (the messenger is in the token).
    let origin = origin(&headers).map(str::to_owned);
    if let (Some(o), Some(site), Some(m)) = (&origin, q.get("siteId"), q.get("messengerId"))
        && let Ok(site) = site.parse::<SiteId>()
    {
        match app.messenger(site, m).await {
            Ok(Some(m)) if *o == app.config.public_url || m.allows_origin(o) => {}
            Ok(Some(_)) => return ApiError::origin_not_allowed().into_response(),
            Ok(None) => return ApiError::messenger_not_found().into_response(),
            Err(e) => return e.into_response(),
        }
    }
    sized(ws).on_upgrade(move |socket| run(app.0, socket, Side::Contact, origin))
}

pub async fn agent_ws(
    State(app): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let origin = origin(&headers).map(str::to_owned);
    if origin
        .as_deref()
        .is_some_and(|o| o != app.config.public_url)
    {
        return ApiError::origin_not_allowed().into_response();
    }
    sized(ws).on_upgrade(move |socket| run(app.0, socket, Side::Agent, origin))
}

/// Frame limits and buffers. tungstenite's default 128 KiB read buffer per socket would make
/// idle sockets cost >100 KB each; frames here are small JSON, so 4 KiB buffers suffice
/// (larger frames still work, the buffer grows).
fn sized(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.max_message_size(64 * 1024)
        .max_frame_size(64 * 1024)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from(reason.to_owned()),
        })))
        .await;
}

async fn send_json(socket: &mut WebSocket, v: &Value) -> bool {
    socket
        .send(Message::Text(Utf8Bytes::from(v.to_string())))
        .await
        .is_ok()
}

async fn authenticate_frame(
    app: &App,
    side: Side,
    origin: Option<&str>,
    token: &str,
) -> Result<Authed, (u16, &'static str)> {
    match side {
        Side::Contact => {
            let (claims, messenger) = authenticate_contact(app, token)
                .await
                .map_err(|_| (CLOSE_AUTH, "invalid or expired token"))?;
            if let Some(o) = origin
                && o != app.config.public_url
                && !messenger.allows_origin(o)
            {
                return Err((CLOSE_ORIGIN, "origin not allowed"));
            }
            Ok(Authed {
                expires_at: Some(claims.exp),
                who: Who::Contact {
                    site: SiteId(claims.site_id),
                    contact_id: claims.sub,
                    messenger_id: claims.messenger_id,
                    preview: claims.preview,
                },
            })
        }
        Side::Agent => match authenticate(app, token).await {
            Ok(Principal::Agent {
                agent,
                token_hash,
                expires_at,
            }) => Ok(Authed {
                expires_at: Some(expires_at / 1000),
                who: Who::Agent {
                    site: Some(agent.site_id),
                    id: agent.agent_id.to_string(),
                    name: agent.name,
                    token_hash: Some(token_hash),
                },
            }),
            Ok(Principal::Operator) => Ok(Authed {
                expires_at: None,
                who: Who::Agent {
                    site: None,
                    id: "00000000-0000-0000-0000-000000000000".into(),
                    name: "Operator".into(),
                    token_hash: None,
                },
            }),
            Err(_) => Err((CLOSE_AUTH, "invalid or ended session")),
        },
    }
}

fn token_of(v: &Value) -> Option<&str> {
    (v.get("type")?.as_str()? == "auth").then(|| v.get("token")?.as_str())?
}

async fn run(app: Arc<App>, mut socket: WebSocket, side: Side, origin: Option<String>) {
    // 1. The first frame authenticates, within 10 seconds (control frames do not count).
    let deadline = tokio::time::Instant::now() + AUTH_TIMEOUT;
    let token = loop {
        match tokio::time::timeout_at(deadline, socket.recv()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            Ok(Some(Ok(Message::Text(t)))) => {
                break serde_json::from_str::<Value>(&t)
                    .ok()
                    .and_then(|v| token_of(&v).map(str::to_owned));
            }
            Ok(_) => break None,
            Err(_) => {
                return close(&mut socket, CLOSE_AUTH, "no auth frame within 10 seconds").await;
            }
        }
    };
    let Some(token) = token else {
        return close(&mut socket, CLOSE_AUTH, "the first frame must be auth").await;
    };
    let mut authed = match authenticate_frame(&app, side, origin.as_deref(), &token).await {
        Ok(a) => a,
        Err((code, why)) => return close(&mut socket, code, why).await,
    };
    // An operator socket watches no site in particular; it must name one with `?siteId=`.
    let topic = match &authed.who {
        Who::Contact { contact_id, .. } => Topic::Contact(contact_id.clone()),
        Who::Agent {
            site: Some(site), ..
        } => Topic::Site(site.0),
        Who::Agent { site: None, .. } => {
            return close(
                &mut socket,
                CLOSE_AUTH,
                "the operator token cannot open an agent socket; log in as an agent",
            )
            .await;
        }
    };
    let mut sub = app.hub.subscribe(topic);
    let mut control = app.hub.subscribe_control();
    let mut shutdown = app.shutdown.clone();
    if !send_json(
        &mut socket,
        &json!({"type": "ready", "expiresAt": authed.expires_at}),
    )
    .await
    {
        return;
    }
    metrics::gauge!("confidant_ws_connections", "side" => if side == Side::Contact { "contact" } else { "agent" }).increment(1.0);
    let mut conn = Conn {
        app: app.clone(),
        sent: HashMap::new(),
    };
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();

    let reason = loop {
        let expiry = expiry_instant(authed.expires_at);
        tokio::select! {
            frame = socket.recv() => {
                last_heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(Message::Text(t))) => {
                        match conn.client_frame(&mut socket, side, origin.as_deref(), &mut authed, &t).await {
                            Ok(()) => {}
                            Err((code, why)) => break Some((code, why)),
                        }
                    }
                    Some(Ok(Message::Binary(_))) => {
                        if !send_json(&mut socket, &json!({"type": "error", "code": "invalid_request", "message": "frames are JSON text"})).await { break None; }
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break None,
                }
            }
            ev = sub.recv() => {
                if !conn.hub_event(&mut socket, &authed.who, ev).await { break None; }
            }
            c = control.recv() => {
                if let (Ok(Control::SessionEnded { token_hash }), Who::Agent { token_hash: Some(mine), .. }) = (&c, &authed.who)
                    && token_hash == mine
                {
                    break Some((CLOSE_AUTH, "logged out"));
                }
            }
            _ = ping.tick() => {
                if last_heard.elapsed() > DEAD_AFTER { break None; }
                if socket.send(Message::Ping(Default::default())).await.is_err() { break None; }
            }
            _ = tokio::time::sleep_until(expiry) => break Some((CLOSE_AUTH, "the token expired")),
            _ = shutdown.changed() => break Some((1001, "the server is restarting")),
        }
    };
    if let Some((code, why)) = reason {
        close(&mut socket, code, why).await;
    }
    metrics::gauge!("confidant_ws_connections", "side" => if side == Side::Contact { "contact" } else { "agent" }).decrement(1.0);
}

fn expiry_instant(expires_at: Option<i64>) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    match expires_at {
        Some(exp) => now + Duration::from_secs((exp - now_secs()).max(0) as u64),
        None => now + Duration::from_secs(365 * 86_400),
    }
}

struct Conn {
    app: Arc<App>,
    /// Per conversation, the run of seqs `first..=last` this socket has sent: later events in
    /// it are repeats (after a resume), a jump past `last` is a gap to fill from the store, and
    /// a resume from before `first` sends only what lies before it.
    sent: HashMap<String, Sent>,
}

#[derive(Clone, Copy)]
struct Sent {
    first: i64,
    last: i64,
}

impl Conn {
    async fn client_frame(
        &mut self,
        socket: &mut WebSocket,
        side: Side,
        origin: Option<&str>,
        authed: &mut Authed,
        text: &str,
    ) -> Result<(), (u16, &'static str)> {
        let Ok(v) = serde_json::from_str::<Value>(text) else {
            send_json(socket, &json!({"type": "error", "code": "invalid_request", "message": "frames are JSON objects"})).await;
            return Ok(());
        };
        let conv_id = v
            .get("conversationId")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match v.get("type").and_then(Value::as_str) {
            Some("auth") => {
                let token = token_of(&v).unwrap_or_default();
                let fresh = authenticate_frame(&self.app, side, origin, token).await?;
                if !same_subject(&fresh.who, &authed.who) {
                    return Err((CLOSE_AUTH, "the new token names someone else"));
                }
                *authed = fresh;
                send_json(
                    socket,
                    &json!({"type": "ready", "expiresAt": authed.expires_at}),
                )
                .await;
            }
            Some("resume") => {
                let after = v
                    .get("afterSeq")
                    .and_then(Value::as_i64)
                    .unwrap_or(0)
                    .max(0);
                match self.visible(&authed.who, conv_id.as_deref()).await {
                    Some(conv) => {
                        let id = conv.conversation_id.to_string();
                        let sent = self.sent.get(&id).copied();
                        let run = match sent {
                            // What lies before the run was never sent on this socket.
                            Some(r) if after + 1 < r.first => {
                                match self
                                    .send_stored(socket, &authed.who, &id, after, r.first - 1)
                                    .await
                                {
                                    Some(_) => Sent {
                                        first: after + 1,
                                        last: r.last,
                                    },
                                    None => return Ok(()),
                                }
                            }
                            // The client claims more than this socket sent (e.g. read over REST).
                            Some(r) => Sent {
                                first: r.first.min(after + 1),
                                last: r.last.max(after),
                            },
                            None => Sent {
                                first: after + 1,
                                last: after,
                            },
                        };
                        self.track(&id, run);
                        self.fill(socket, &authed.who, &id, i64::MAX).await;
                    }
                    None => {
                        send_json(socket, &json!({"type": "error", "code": "not_found", "message": "conversation not found"})).await;
                    }
                }
            }
            Some("typing") => {
                if let Some(conv) = self.visible(&authed.who, conv_id.as_deref()).await {
                    let mut sender = sender_of(&authed.who);
                    if let Who::Contact {
                        site, contact_id, ..
                    } = &authed.who
                        && let Ok(name) = contact_name(&self.app, *site, contact_id).await
                    {
                        sender["name"] = json!(name);
                    }
                    let frame = json!({"type": "typing", "conversationId": conv.conversation_id, "sender": sender});
                    publish_other(&self.app, &conv, frame);
                }
            }
            Some("read") => {
                let seq = v.get("seq").and_then(Value::as_i64).unwrap_or(0);
                if let Some(conv) = self.visible(&authed.who, conv_id.as_deref()).await {
                    let (by_agent, id) = match &authed.who {
                        Who::Agent { id, .. } => (true, id.clone()),
                        Who::Contact { contact_id, .. } => (false, contact_id.clone()),
                    };
                    let _ = mark_read(
                        &self.app,
                        conv.site_id,
                        conv.conversation_id,
                        by_agent,
                        &id,
                        seq,
                    )
                    .await;
                }
            }
            Some("ping") => {
                send_json(socket, &json!({"type": "pong"})).await;
            }
            _ => {
                send_json(socket, &json!({"type": "error", "code": "invalid_request", "message": "unknown frame type"})).await;
            }
        }
        Ok(())
    }

    /// The conversation, if this socket may see it.
    async fn visible(
        &self,
        who: &Who,
        conv: Option<&str>,
    ) -> Option<confidant_store::ConversationRow> {
        let conv = conv.and_then(crate::extract::uuid_id)?;
        let site = match who {
            Who::Contact { site, .. }
            | Who::Agent {
                site: Some(site), ..
            } => *site,
            Who::Agent { site: None, .. } => return None,
        };
        let row = self.app.store.get_conversation(site, conv).await.ok()??;
        let mine = match who {
            Who::Contact {
                contact_id,
                messenger_id,
                preview,
                ..
            } => {
                row.contact_id.to_string() == *contact_id
                    && row.messenger_id.to_string() == *messenger_id
                    && row.preview == *preview
            }
            Who::Agent { .. } => true,
        };
        mine.then_some(row)
    }

    fn track(&mut self, conv: &str, run: Sent) {
        if self.sent.len() >= MAX_TRACKED && !self.sent.contains_key(conv) {
            self.sent.clear();
        }
        self.sent.insert(conv.to_owned(), run);
    }

    /// Send the stored messages of `conv` with `after < seq <= upto`, in order. Returns the
    /// last seq sent (`after` when none), or `None` if the socket failed.
    async fn send_stored(
        &mut self,
        socket: &mut WebSocket,
        who: &Who,
        conv: &str,
        mut after: i64,
        upto: i64,
    ) -> Option<i64> {
        let site = match who {
            Who::Contact { site, .. }
            | Who::Agent {
                site: Some(site), ..
            } => *site,
            Who::Agent { site: None, .. } => return Some(after),
        };
        let Ok(conv) = conv.parse() else {
            return Some(after);
        };
        while after < upto {
            let Ok(page) = self.app.store.messages(site, conv, after, 200).await else {
                return Some(after);
            };
            if page.is_empty() {
                break;
            }
            for m in page.iter().take_while(|m| m.seq <= upto) {
                if !send_json(
                    socket,
                    &json!({"type": "message", "message": views::message(m)}),
                )
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
    async fn fill(&mut self, socket: &mut WebSocket, who: &Who, conv: &str, upto: i64) -> bool {
        let Some(run) = self.sent.get(conv).copied() else {
            return true;
        };
        match self.send_stored(socket, who, conv, run.last, upto).await {
            Some(last) => {
                self.track(conv, Sent { last, ..run });
                true
            }
            None => false,
        }
    }

    async fn hub_event(&mut self, socket: &mut WebSocket, who: &Who, ev: Recv) -> bool {
        match ev {
            Recv::Event(e) => {
                // A contact sees only the conversations of its token's messenger and kind.
                if let Who::Contact {
                    messenger_id,
                    preview,
                    ..
                } = who
                    && (e.messenger_id != *messenger_id || e.preview != *preview)
                {
                    return true;
                }
                if e.seq > 0 {
                    match self.sent.get(&e.conversation_id).copied() {
                        Some(r) if e.seq <= r.last => return true,
                        Some(r) if e.seq > r.last + 1 => {
                            // A gap (a lagged queue, a lost or late bus message): fill it from the store.
                            return self
                                .fill(socket, who, &e.conversation_id.clone(), e.seq)
                                .await;
                        }
                        Some(r) => self.track(&e.conversation_id, Sent { last: e.seq, ..r }),
                        None => self.track(
                            &e.conversation_id,
                            Sent {
                                first: e.seq,
                                last: e.seq,
                            },
                        ),
                    }
                    metrics::histogram!("confidant_push_latency_seconds")
                        .record((now_millis() - e.sent_at_ms).max(0) as f64 / 1000.0);
                }
                socket
                    .send(Message::Text(Utf8Bytes::from(e.frame.to_string())))
                    .await
                    .is_ok()
            }
            Recv::Lagged(_) => {
                // Events were dropped: messages of conversations with later events are filled
                // from the store (the runs stay, so nothing is sent twice), but others, and
                // typing/read/conversation events, are lost: the client resumes what it shows.
                send_json(socket, &json!({"type": "resync", "conversationId": null})).await
            }
            Recv::Closed => false,
        }
    }
}

fn same_subject(a: &Who, b: &Who) -> bool {
    match (a, b) {
        (
            Who::Contact {
                contact_id: x,
                messenger_id: m,
                preview: p,
                ..
            },
            Who::Contact {
                contact_id: y,
                messenger_id: n,
                preview: q,
                ..
            },
        ) => x == y && m == n && p == q,
        (Who::Agent { id: x, .. }, Who::Agent { id: y, .. }) => x == y,
        _ => false,
    }
}

fn sender_of(who: &Who) -> Value {
    match who {
        Who::Contact { contact_id, .. } => json!({"type": "contact", "id": contact_id}),
        Who::Agent { id, name, .. } => json!({"type": "agent", "id": id, "name": name}),
    }
}
