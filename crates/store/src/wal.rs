//! SQLite's WAL stays bounded under a steady send load with readers beside it (issue 11,
//! finding 7: passive checkpoints alone let it reach 2.5 GB).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::batch::tests::seed;
use crate::{SendRequest, SendTarget, SenderType, Store, StoreOptions};

const LIMIT: u64 = 1024 * 1024;
/// The bound the test holds the WAL file to: the limit plus what the sends add before the
/// checkpointer looks again (every 100 ms here), with room to spare. Without the RESTART
/// checkpoints the WAL passes it a few seconds into the load.
const BOUND: u64 = 16 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_steady_send_load_keeps_the_wal_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    let url = format!("sqlite://{}?mode=rwc", db.display());
    let store = Store::connect_with(
        &url,
        Duration::from_secs(5),
        &dir.path().join("master.key"),
        StoreOptions {
            wal_limit_bytes: LIMIT,
            checkpoint_every: Duration::from_millis(100),
        },
    )
    .await
    .expect("open");
    let (site, messenger, contacts) = seed(&store, "s").await;
    let wal = dir.path().join("t.db-wal");

    let done = Arc::new(AtomicBool::new(false));
    let largest = Arc::new(AtomicU64::new(0));
    // Readers, as the API's pages and sockets read while sends go on.
    let mut readers = Vec::new();
    for &contact in &contacts {
        let (store, done) = (store.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let convs = store
                    .contact_conversations(site, messenger, contact, false, 20)
                    .await
                    .expect("read");
                if let Some((c, _)) = convs.first() {
                    store
                        .messages(site, c.conversation_id, 0, 100)
                        .await
                        .expect("read");
                }
            }
        }));
    }
    let sampler = {
        let (done, largest, wal) = (done.clone(), largest.clone(), wal.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                largest.fetch_max(size, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let body = "x".repeat(1000);
    let mut senders = Vec::new();
    for t in 0..8usize {
        let (store, body) = (store.clone(), body.clone());
        let contact = contacts[t % contacts.len()];
        senders.push(tokio::spawn(async move {
            for i in 0..2000i64 {
                store
                    .send(SendRequest {
                        site_id: site,
                        target: SendTarget::Contact {
                            messenger_id: messenger,
                            contact_id: contact,
                            preview: false,
                            conversation_id: None,
                        },
                        sender_type: SenderType::Contact,
                        sender_id: contact.0,
                        sender_name: "c".into(),
                        body: body.clone(),
                        client_message_id: Some(format!("t{t}-{i}")),
                        now: 1_000 + i,
                        attachments: Vec::new(),
                    })
                    .await
                    .expect("send");
            }
        }));
    }
    for s in senders {
        s.await.expect("sender");
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        r.await.expect("reader");
    }
    sampler.await.expect("sampler");
    let largest = largest.load(Ordering::Relaxed);
    let db_size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    eprintln!("largest WAL {largest} bytes; database {db_size} bytes");
    assert!(
        largest <= BOUND,
        "the WAL reached {largest} bytes (bound {BOUND}, database {db_size})"
    );
    store.close().await;
}
