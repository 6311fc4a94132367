//! Load generators that wrk cannot be: live-delivery latency and idle WebSockets.
//!
//! `loadgen latency BASE CONTACT_TOKEN AGENT_TOKEN RATE SECONDS` — a contact sends RATE
//! messages per second over REST while an agent's WebSocket receives them (after half a second
//! of unmeasured warm-up at the same rate); prints the p50, p99 and max time from the start of
//! the send to the push, and how many arrived.
//! `loadgen idle BASE SITE MESSENGER SECRET FROM N PER_CONTACT SECONDS` — authorizes the
//! contacts `idle-<k>@bench.test` of sockets FROM..FROM+N (PER_CONTACT sockets per contact,
//! signed with the messenger's HS256 SECRET), prints `authorized K`, waits for a line on stdin,
//! opens the N authenticated contact WebSockets, prints `ready N` and holds them for SECONDS.
//! Socket k connects from 127.0.0.2 + k / PER_ADDRESS: the server caps sockets per contact (20)
//! and per client address (500), and one source address has ~28,000 ephemeral ports. Several
//! processes with disjoint FROM..FROM+N stay under a per-process file-descriptor limit.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn fail(msg: &str) -> ! {
    eprintln!("loadgen: {msg}");
    std::process::exit(2)
}

fn ws_url(base: &str, path: &str) -> String {
    format!("{}{path}", base.replacen("http://", "ws://", 1))
}

/// Sockets opened from one source address: under the server's per-address cap (500).
const PER_ADDRESS: usize = 400;

async fn open(
    base: &str,
    path: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (ws, _) = tokio_tungstenite::connect_async(ws_url(base, path))
        .await
        .unwrap_or_else(|e| fail(&format!("connect: {e}")));
    authenticate(ws, token).await
}

/// Like [`open`], from the local address `from`.
async fn open_from(
    base: &str,
    path: &str,
    token: &str,
    from: Ipv4Addr,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let server: SocketAddr = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap_or_else(|_| fail("BASE must be http://IP:PORT"));
    let socket = tokio::net::TcpSocket::new_v4().unwrap_or_else(|e| fail(&e.to_string()));
    socket
        .bind(SocketAddr::from((from, 0)))
        .unwrap_or_else(|e| fail(&format!("bind {from}: {e}")));
    let stream = socket
        .connect(server)
        .await
        .unwrap_or_else(|e| fail(&format!("connect from {from}: {e}")));
    let (ws, _) = tokio_tungstenite::client_async(ws_url(base, path), stream)
        .await
        .unwrap_or_else(|e| fail(&format!("upgrade: {e}")));
    authenticate(ws, token).await
}

async fn authenticate<S>(
    mut ws: tokio_tungstenite::WebSocketStream<S>,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<S>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(
        json!({"type": "auth", "token": token}).to_string(),
    ))
    .await
    .unwrap_or_else(|e| fail(&e.to_string()));
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.contains("\"ready\"") => return ws,
            Some(Ok(Message::Text(_))) => continue,
            other => fail(&format!("auth failed: {other:?}")),
        }
    }
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .unwrap_or_else(|| fail("see the usage at the top of loadgen.rs"))
    };
    match arg(1).as_str() {
        "latency" => {
            let (base, contact, agent) = (arg(2), arg(3), arg(4));
            let rate: u64 = arg(5).parse().unwrap_or_else(|_| fail("RATE"));
            let secs: u64 = arg(6).parse().unwrap_or_else(|_| fail("SECONDS"));
            let mut ws = open(&base, "/api/v1/agent/ws", &agent).await;
            let start = Instant::now();
            let client = reqwest::Client::new();
            let total = rate * secs;
            let sender = tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_nanos(1_000_000_000 / rate));
                // Half a second of warm-up at the same rate, not measured: the client's
                // connection pool fills up, as it would be in a running system.
                let warm = rate / 2;
                for i in 0..warm + total {
                    tick.tick().await;
                    let (client, url, token) = (
                        client.clone(),
                        format!("{base}/api/v1/messenger/messages"),
                        contact.clone(),
                    );
                    let body = if i < warm {
                        "warm-up".to_owned()
                    } else {
                        format!("t:{}", start.elapsed().as_nanos())
                    };
                    tokio::spawn(async move {
                        let _ = client
                            .post(url)
                            .bearer_auth(token)
                            .json(&json!({"clientMessageId": format!("l{i}"), "body": body}))
                            .send()
                            .await;
                    });
                }
            });
            let mut lat = Vec::with_capacity(total as usize);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(secs + 6);
            while (lat.len() as u64) < total {
                let frame = match tokio::time::timeout_at(deadline, ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) => t,
                    Ok(Some(Ok(_))) => continue,
                    _ => break,
                };
                let Ok(v) = serde_json::from_str::<Value>(&frame) else {
                    continue;
                };
                if let Some(t) = v["message"]["body"]
                    .as_str()
                    .and_then(|b| b.strip_prefix("t:"))
                    .and_then(|t| t.parse::<u128>().ok())
                {
                    let ms = (start.elapsed().as_nanos() - t) as f64 / 1e6;
                    if ms > 10.0 && std::env::var_os("LOADGEN_SLOW").is_some() {
                        eprintln!("slow {ms:.1} ms, sent at {:.3} s", t as f64 / 1e9);
                    }
                    lat.push(ms);
                }
            }
            let _ = sender.await;
            lat.sort_by(|a, b| a.total_cmp(b));
            println!(
                "received={} of {} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
                lat.len(),
                total,
                pct(&lat, 0.5),
                pct(&lat, 0.99),
                pct(&lat, 1.0)
            );
        }
        "idle" => {
            let (base, site, messenger, secret) = (arg(2), arg(3), arg(4), arg(5));
            let num =
                |i: usize, what: &str| -> usize { arg(i).parse().unwrap_or_else(|_| fail(what)) };
            let (from, n, per_contact) =
                (num(6, "FROM"), num(7, "N"), num(8, "PER_CONTACT").max(1));
            let secs = num(9, "SECONDS") as u64;
            // The contacts of sockets FROM..FROM+N, authorized 32 at a time.
            let client = reqwest::Client::new();
            let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
            let exp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                + 3 * 3600;
            let contacts = from / per_contact..(from + n).div_ceil(per_contact);
            let tokens: std::collections::HashMap<usize, String> =
                futures_util::stream::iter(contacts)
                    .map(|k| {
                        let jwt = jsonwebtoken::encode(
                            &jsonwebtoken::Header::default(),
                            &json!({"sub": format!("idle-{k}@bench.test"), "exp": exp}),
                            &key,
                        )
                        .unwrap_or_else(|e| fail(&e.to_string()));
                        let req = client.post(format!("{base}/securemessage/authorize")).json(
                            &json!({"siteId": site, "messengerId": messenger, "contactJwt": jwt}),
                        );
                        async move {
                            let v: Value = req
                                .send()
                                .await
                                .and_then(reqwest::Response::error_for_status)
                                .unwrap_or_else(|e| fail(&format!("authorize: {e}")))
                                .json()
                                .await
                                .unwrap_or_else(|e| fail(&format!("authorize: {e}")));
                            let token = v["accessToken"]
                                .as_str()
                                .unwrap_or_else(|| fail("no accessToken"))
                                .to_owned();
                            (k, token)
                        }
                    })
                    .buffer_unordered(32)
                    .collect()
                    .await;
            println!("authorized {}", tokens.len());
            // The sockets open on a line on stdin: the caller measures the server in between.
            let _ = tokio::io::AsyncBufReadExt::read_line(
                &mut tokio::io::BufReader::new(tokio::io::stdin()),
                &mut String::new(),
            )
            .await;
            let base = &base;
            let tokens = &tokens;
            let mut socks = Vec::with_capacity(n);
            let mut pending = futures_util::stream::iter(from..from + n)
                .map(|k| {
                    let ip = u32::from(Ipv4Addr::new(127, 0, 0, 2)) + (k / PER_ADDRESS) as u32;
                    open_from(
                        base,
                        "/api/v1/messenger/ws",
                        &tokens[&(k / per_contact)],
                        Ipv4Addr::from(ip),
                    )
                })
                .buffer_unordered(200);
            while let Some(ws) = pending.next().await {
                socks.push(ws);
            }
            println!("ready {}", socks.len());
            tokio::time::sleep(Duration::from_secs(secs)).await;
        }
        other => fail(&format!("unknown command {other}")),
    }
}
