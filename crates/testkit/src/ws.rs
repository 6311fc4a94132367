//! The one WebSocket client of the tests: connect, authenticate, resume, the next frame (of a
//! type) within a time, and the close code.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The contact's socket.
pub const CONTACT_WS: &str = "/api/v1/messenger/ws";
/// The agent's socket.
pub const AGENT_WS: &str = "/api/v1/agent/ws";
/// How long a test waits for something that should come at once.
pub const SOON: Duration = Duration::from_secs(10);

/// What the server did next on a socket.
#[derive(Debug)]
pub enum Got {
    Json(Value),
    /// The close frame's code, or `None` when the connection just ended.
    Closed(Option<u16>),
}

/// A client socket.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Socket {
    /// Connect to `url` (`ws://…`) without authenticating.
    pub async fn connect(url: &str) -> Socket {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket handshake");
        Socket { ws }
    }

    /// Connect over a TCP stream the test prepared (e.g. with a tiny receive buffer).
    pub async fn connect_over(url: &str, tcp: TcpStream) -> Socket {
        let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp))
            .await
            .expect("websocket handshake");
        Socket { ws }
    }

    /// Connect and authenticate; the socket and its ready frame.
    pub async fn open(url: &str, token: &str) -> (Socket, Value) {
        let mut ws = Self::connect(url).await;
        let ready = ws.auth(token).await;
        (ws, ready)
    }

    /// The tungstenite stream under it, for tests that write and read at once or byte by byte.
    pub fn into_inner(self) -> WebSocketStream<MaybeTlsStream<TcpStream>> {
        self.ws
    }

    /// Send an auth frame and expect `ready`; returns it.
    pub async fn auth(&mut self, token: &str) -> Value {
        self.send(json!({"type": "auth", "token": token})).await;
        let ready = self.next_json().await;
        assert_eq!(ready["type"], "ready", "{ready}");
        ready
    }

    /// Send a JSON frame.
    pub async fn send(&mut self, v: Value) {
        self.send_raw(Message::Text(v.to_string().into())).await;
    }

    /// Send any frame (text that is not JSON, pings…).
    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send frame");
    }

    /// Ask for the messages of `conversation` after `after_seq`.
    pub async fn resume(&mut self, conversation: &str, after_seq: i64) {
        self.send(json!({"type": "resume", "conversationId": conversation, "afterSeq": after_seq}))
            .await;
    }

    /// The next frame as it comes, control frames included; panics after `within`.
    pub async fn next_raw(&mut self, within: Duration) -> Option<Result<Message, String>> {
        tokio::time::timeout(within, self.ws.next())
            .await
            .expect("the server sent nothing in time")
            .map(|r| r.map_err(|e| e.to_string()))
    }

    /// The next JSON frame or the close, skipping control frames; panics after `within`.
    pub async fn next_within(&mut self, within: Duration) -> Got {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("the server sent nothing in time");
            match frame {
                Some(Ok(Message::Text(t))) => {
                    return Got::Json(serde_json::from_str(&t).expect("JSON frame"));
                }
                Some(Ok(Message::Close(c))) => return Got::Closed(c.map(|c| u16::from(c.code))),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
                Some(Ok(Message::Binary(_))) => panic!("binary frame"),
                Some(Err(_)) | None => return Got::Closed(None),
            }
        }
    }

    /// The next JSON frame, [`SOON`]; panics on a close.
    pub async fn next_json(&mut self) -> Value {
        match self.next_within(SOON).await {
            Got::Json(v) => v,
            other @ Got::Closed(_) => panic!("expected a frame, got {other:?}"),
        }
    }

    /// The next frame of type `kind`, skipping frames of other types.
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.next_json().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// The message of the next `message` event, skipping conversation, typing and read events;
    /// panics on any other frame.
    pub async fn next_message(&mut self) -> Value {
        loop {
            let v = self.next_json().await;
            match v["type"].as_str() {
                Some("message") => return v["message"].clone(),
                Some("conversation" | "typing" | "read") => continue,
                _ => panic!("expected a message event, got {v}"),
            }
        }
    }

    /// The close code that comes within `within`; panics on a message event before it.
    pub async fn expect_close(&mut self, within: Duration) -> Option<u16> {
        loop {
            match self.next_within(within).await {
                Got::Closed(code) => return code,
                Got::Json(v) => {
                    assert_ne!(v["type"], "message", "a message instead of the close: {v}")
                }
            }
        }
    }

    /// A barrier: everything the server meant to send before answering this ping came first,
    /// so if the next frame is the pong, nothing else was pending.
    pub async fn assert_nothing_pending(&mut self, who: &str) {
        self.send(json!({"type": "ping"})).await;
        let v = self.next_json().await;
        assert_eq!(v["type"], "pong", "{who} got {v}");
    }
}

/// A message's (seq, body).
pub fn seq_body(message: &Value) -> (i64, String) {
    (
        message["seq"].as_i64().expect("seq"),
        message["body"].as_str().expect("body").to_owned(),
    )
}
