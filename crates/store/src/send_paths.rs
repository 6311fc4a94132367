//! The batch path and the one-by-one path store the same thing: for random rounds of sends
//! (first sends, repeated `clientMessageId`s, sends into closed conversations, agents' sends,
//! closes, several contacts and conversations), one site's rounds go through the writer's
//! batch path (set-based, with its fallbacks) and another site's through the one-by-one path
//! only; the answers and what is stored must match. SQLite always, PostgreSQL when it answers
//! (`stores()`); 32 cases unless `PROPTEST_CASES` says otherwise.

use confidant_core::{ConversationId, SiteId};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use uuid::Uuid;

use crate::batch::tests::{Fixture, finish, seed, stores};
use crate::writer::{Fallbacks, WriteStrategy, one_by_one, store_batch};

use crate::{SendOutcome, SendRequest, SendTarget, SenderType, Store};

/// The agent every agent send comes from.
const AGENT: Uuid = Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002);
/// A conversation that does not exist.
const NOWHERE: ConversationId = ConversationId(Uuid::from_u128(7));

/// A conversation named by its place in the order conversations first appeared in answers
/// (taken modulo their number), or one that does not exist.
#[derive(Debug, Clone, Copy)]
enum Named {
    Seen(usize),
    Nowhere,
}

#[derive(Debug, Clone)]
enum Spec {
    Contact {
        who: usize,
        cmid: u8,
        conv: Option<Named>,
    },
    Agent {
        conv: Named,
        cmid: u8,
    },
    Close {
        conv: Named,
    },
}

fn named() -> impl Strategy<Value = Named> {
    prop_oneof![
        6 => (0usize..6).prop_map(Named::Seen),
        1 => Just(Named::Nowhere),
    ]
}

fn spec() -> impl Strategy<Value = Spec> {
    prop_oneof![
        6 => (0usize..3, 0u8..5, proptest::option::of(named()))
            .prop_map(|(who, cmid, conv)| Spec::Contact { who, cmid, conv }),
        3 => (named(), 0u8..5).prop_map(|(conv, cmid)| Spec::Agent { conv, cmid }),
        1 => named().prop_map(|conv| Spec::Close { conv }),
    ]
}

fn rounds() -> impl Strategy<Value = Vec<Vec<Spec>>> {
    proptest::collection::vec(proptest::collection::vec(spec(), 1..10), 1..5)
}

/// One site's side of a case: its contacts and the conversations seen so far.
struct Side {
    site: SiteId,
    messenger: confidant_core::MessengerId,
    contacts: Vec<confidant_core::ContactId>,
    seen: Vec<ConversationId>,
}

impl Side {
    async fn new(store: &Store, name: &str) -> Side {
        let (site, messenger, contacts) = seed(store, name).await;
        Side {
            site,
            messenger,
            contacts,
            seen: Vec::new(),
        }
    }

    fn conversation(&self, n: Named) -> ConversationId {
        match n {
            Named::Seen(_) if self.seen.is_empty() => NOWHERE,
            Named::Seen(i) => self.seen[i % self.seen.len()],
            Named::Nowhere => NOWHERE,
        }
    }

    fn request(&self, i: usize, spec: &Spec) -> SendRequest {
        let now = 1_000 + i as i64;
        match spec {
            Spec::Contact { who, cmid, conv } => SendRequest {
                site_id: self.site,
                target: SendTarget::Contact {
                    messenger_id: self.messenger,
                    contact_id: self.contacts[*who],
                    preview: false,
                    conversation_id: conv.map(|c| self.conversation(c)),
                },
                sender_type: SenderType::Contact,
                sender_id: self.contacts[*who].0,
                sender_name: format!("contact {who}"),
                body: format!("send {i}"),
                client_message_id: Some(format!("k{cmid}")),
                now,
                attachments: Vec::new(),
            },
            Spec::Agent { conv, cmid } => SendRequest {
                site_id: self.site,
                target: SendTarget::Agent {
                    conversation_id: self.conversation(*conv),
                },
                sender_type: SenderType::Agent,
                sender_id: AGENT,
                sender_name: "Agent".into(),
                body: format!("send {i}"),
                client_message_id: Some(format!("a{cmid}")),
                now,
                attachments: Vec::new(),
            },
            Spec::Close { conv } => SendRequest {
                site_id: self.site,
                target: SendTarget::Close {
                    conversation_id: self.conversation(*conv),
                },
                sender_type: SenderType::System,
                sender_id: AGENT,
                sender_name: "System".into(),
                body: format!("closed by send {i}"),
                client_message_id: None,
                now,
                attachments: Vec::new(),
            },
        }
    }

    /// An answer with ids replaced by places, noting conversations seen for the first time.
    fn normalize(&mut self, r: &crate::Result<SendOutcome>) -> String {
        match r {
            Err(e) => format!("error {e}"),
            Ok(o) => {
                let c = &o.conversation;
                let place = match self.seen.iter().position(|s| *s == c.conversation_id) {
                    Some(p) => p,
                    None => {
                        self.seen.push(c.conversation_id);
                        self.seen.len() - 1
                    }
                };
                format!(
                    "conv {place} open {} last {} updated {} | seq {} body {:?} cmid {:?} at {} \
                     | created {} opened {}",
                    c.open,
                    c.last_seq,
                    c.updated_at,
                    o.message.seq,
                    o.message.body,
                    o.message.client_message_id,
                    o.message.created_at,
                    o.created,
                    o.opened
                )
            }
        }
    }

    /// What is stored, conversation by conversation in the order they were seen.
    async fn stored(&self, store: &Store) -> Vec<String> {
        let mut out = Vec::new();
        for (place, id) in self.seen.iter().enumerate() {
            let c = store
                .get_conversation(self.site, *id)
                .await
                .expect("get")
                .expect("a seen conversation exists");
            let messages: Vec<_> = store
                .messages(self.site, *id, 0, 1_000)
                .await
                .expect("messages")
                .into_iter()
                .map(|m| (m.seq, m.body, m.client_message_id, m.sender_type.as_str()))
                .collect();
            out.push(format!(
                "conv {place} open {} last {} updated {} messages {messages:?}",
                c.open, c.last_seq, c.updated_at
            ));
        }
        out
    }
}

async fn check(
    store: &Store,
    strategy: WriteStrategy,
    rounds: &[Vec<Spec>],
) -> Result<(), TestCaseError> {
    let tag = Uuid::new_v4().simple().to_string();
    let mut batched = Side::new(store, &format!("batched {tag}")).await;
    let mut single = Side::new(store, &format!("one by one {tag}")).await;
    let mut i = 0;
    for round in rounds {
        let (a, b): (Vec<_>, Vec<_>) = round
            .iter()
            .map(|s| {
                i += 1;
                (batched.request(i, s), single.request(i, s))
            })
            .unzip();
        let a_refs: Vec<&SendRequest> = a.iter().collect();
        let b_refs: Vec<&SendRequest> = b.iter().collect();
        let a_out = store_batch(
            &store.write,
            &a_refs,
            strategy,
            &store.vault,
            &Fallbacks::default(),
        )
        .await;
        let b_out = one_by_one(&store.write, &b_refs, strategy, &store.vault).await;
        let a_norm: Vec<String> = a_out.iter().map(|r| batched.normalize(r)).collect();
        let b_norm: Vec<String> = b_out.iter().map(|r| single.normalize(r)).collect();
        prop_assert_eq!(a_norm, b_norm, "answers of round {:?}", round);
    }
    prop_assert_eq!(batched.stored(store).await, single.stored(store).await);
    Ok(())
}

#[test]
fn the_batch_path_and_the_one_by_one_path_store_the_same() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(32);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let fixtures: Vec<(&'static str, Fixture)> = rt.block_on(stores());
    for (backend, f) in &fixtures {
        let strategy = WriteStrategy::of(f.store.backend());
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(&rounds(), |rounds| {
            rt.block_on(check(&f.store, strategy, &rounds))
        });
        if let Err(e) = result {
            panic!("{backend}: {e}");
        }
    }
    for (_, f) in fixtures {
        rt.block_on(finish(f));
    }
}
