//! The job queue and its events, through the real server: what a sink receives for sends,
//! retries of a failing sink, and a handler's outcomes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use confidant::jobs::{Event, EventSink, EventType, Handler, Outcome};
use confidant_store::{Job, NewJob};
use confidant_testkit::*;
use serde_json::json;

/// Records every event it gets; fails the first `fail` batches.
#[derive(Default)]
struct Recorder {
    got: Mutex<Vec<Event>>,
    fail: Mutex<u32>,
}

#[async_trait]
impl EventSink for Recorder {
    async fn on_events(&self, events: &[Event]) -> Result<(), String> {
        let mut fail = self.fail.lock().expect("lock");
        if *fail > 0 {
            *fail -= 1;
            return Err("the receiver is down".into());
        }
        self.got.lock().expect("lock").extend_from_slice(events);
        Ok(())
    }
}

impl Recorder {
    fn failing(n: u32) -> Arc<Recorder> {
        Arc::new(Recorder {
            got: Mutex::new(Vec::new()),
            fail: Mutex::new(n),
        })
    }

    /// Wait until `n` events arrived (or 15 s), then answer them.
    async fn wait_for(&self, n: usize) -> Vec<Event> {
        for _ in 0..150 {
            if self.got.lock().expect("lock").len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.got.lock().expect("lock").clone()
    }
}

fn types(events: &[Event]) -> Vec<(&'static str, Option<String>)> {
    events
        .iter()
        .map(|e| (e.kind.as_str(), e.sender_type.clone()))
        .collect()
}

#[tokio::test]
async fn every_stored_message_and_conversation_change_reaches_the_sinks_once() {
    let app = TestApp::spawn().await;
    let sink = Recorder::failing(0);
    app.server().app().jobs.add_sink(sink.clone());
    let site = app.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let sent = mark.send("c1", "hi").await;
    let conv = sent["conversationId"].as_str().unwrap().to_owned();
    let agent = site.agent("a@example.test", "agent").await;
    agent.send(&conv, "a1", "hello back").await;
    // A repeated send stores nothing: no event.
    assert_eq!(agent.try_send(&conv, "a1", "hello back").await.0, 200);
    assert_eq!(agent.close(&conv).await.0, 200);

    let got = sink.wait_for(5).await;
    let mut kinds = types(&got);
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            ("conversation.closed", None),
            ("conversation.created", None),
            ("message.created", Some("agent".into())),
            ("message.created", Some("contact".into())),
            ("message.created", Some("system".into())),
        ]
    );
    let site_id = site.id;
    assert!(
        got.iter()
            .all(|e| e.site.0 == site_id && e.conversation_id.to_string() == conv)
    );
    let created = got
        .iter()
        .find(|e| e.kind == EventType::MessageCreated && e.seq == Some(1))
        .unwrap();
    assert_eq!(
        created.message_id.unwrap().to_string(),
        sent["messageId"].as_str().unwrap()
    );
    assert_eq!(
        created.id,
        Event::id_for(
            EventType::MessageCreated,
            sent["messageId"].as_str().unwrap()
        )
    );
    // Nothing more arrives (each event once).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(sink.got.lock().expect("lock").len(), 5);

    // A preview conversation makes no event.
    let preview = site
        .messenger(json!({}))
        .await
        .named_contact("preview@example.test", true)
        .await;
    preview.send("p1", "testing").await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        sink.got.lock().expect("lock").len(),
        5,
        "previews make no events"
    );
}

#[tokio::test]
async fn a_failing_sink_gets_the_same_events_again_after_a_backoff() {
    let app = TestApp::spawn().await;
    let sink = Recorder::failing(2);
    app.server().app().jobs.add_sink(sink.clone());
    let site = app.site("Acme").await;
    let mark = site
        .messenger(json!({}))
        .await
        .contact("mark@example.test")
        .await;
    let sent = mark.send("c1", "hi").await;
    // Two failures: retried after about 1 s, then 2 s.
    let got = sink.wait_for(2).await;
    assert_eq!(
        types(&got)
            .iter()
            .filter(|t| t.0 == "message.created")
            .count(),
        1,
        "{got:?}"
    );
    let m = got
        .iter()
        .find(|e| e.kind == EventType::MessageCreated)
        .unwrap();
    assert_eq!(
        m.message_id.unwrap().to_string(),
        sent["messageId"].as_str().unwrap()
    );
}

/// Answers from a script, one outcome per run, and records the attempts it saw.
struct Scripted {
    script: Mutex<Vec<Outcome>>,
    runs: Mutex<Vec<(i64, i64)>>,
}

#[async_trait]
impl Handler for Scripted {
    async fn run(&self, jobs: Vec<Job>) -> Vec<Outcome> {
        jobs.iter()
            .map(|j| {
                self.runs
                    .lock()
                    .expect("lock")
                    .push((j.payload["n"].as_i64().expect("n"), j.attempts));
                let mut s = self.script.lock().expect("lock");
                if s.is_empty() {
                    Outcome::Done
                } else {
                    s.remove(0)
                }
            })
            .collect()
    }
}

#[tokio::test]
async fn handlers_retry_reschedule_and_finish_jobs_and_metrics_show_the_queue() {
    let app = TestApp::spawn().await;
    let jobs = &app.server().app().jobs;
    let handler = Arc::new(Scripted {
        script: Mutex::new(vec![
            Outcome::Retry("smtp down".into()),
            Outcome::Later(confidant_core::time_fmt::now_millis() + 300),
        ]),
        runs: Mutex::new(Vec::new()),
    });
    jobs.register("test", handler.clone());
    let now = confidant_core::time_fmt::now_millis();
    let job = |n: i64, key: &str, at: i64| NewJob {
        kind: "test".into(),
        site: confidant_core::SiteId(1),
        key: Some(key.into()),
        payload: json!({"n": n}),
        run_at: at,
    };
    // Far in the future: queued, and visible in /metrics.
    jobs.enqueue(vec![job(9, "future", now + 3_600_000)])
        .await
        .unwrap();
    jobs.enqueue(vec![job(1, "one", now)]).await.unwrap();
    // The same key while queued: not added.
    jobs.enqueue(vec![job(2, "one", now)]).await.unwrap();
    for _ in 0..60 {
        if handler.runs.lock().expect("lock").len() >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Run 1 failed (retry after ~1 s), run 2 asked for later, run 3 finished.
    assert_eq!(
        *handler.runs.lock().expect("lock"),
        vec![(1, 1), (1, 2), (1, 3)]
    );
    let metrics = app.get("/metrics", None).await.text().await.unwrap();
    assert!(
        metrics.contains("confidant_jobs_queued{kind=\"test\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("confidant_jobs_failed_total{kind=\"test\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("confidant_jobs_done_total{kind=\"test\"}"),
        "{metrics}"
    );
}
