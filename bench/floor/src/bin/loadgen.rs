//! Load generators that wrk cannot be: live-delivery latency and idle WebSockets.
//!
//! `loadgen latency BASE CONTACT_TOKEN AGENT_TOKEN RATE SECONDS` — a contact sends RATE
//! messages per second over REST while an agent's WebSocket receives them (after half a second
//! of unmeasured warm-up at the same rate); prints the p50, p99 and max time from the start of
//! the send to the push, and how many arrived.
//! `loadgen idle BASE CONTACT_TOKEN N SECONDS` — opens N authenticated contact WebSockets,
//! prints `ready` when all are open, and holds them for SECONDS.

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

async fn open(
    base: &str,
    path: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(base, path))
        .await
        .unwrap_or_else(|e| fail(&format!("connect: {e}")));
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
                    lat.push((start.elapsed().as_nanos() - t) as f64 / 1e6);
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
            let (base, token) = (arg(2), arg(3));
            let n: usize = arg(4).parse().unwrap_or_else(|_| fail("N"));
            let secs: u64 = arg(5).parse().unwrap_or_else(|_| fail("SECONDS"));
            let mut socks = Vec::with_capacity(n);
            let mut pending = futures_util::stream::iter(0..n)
                .map(|_| open(&base, "/api/v1/messenger/ws", &token))
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
