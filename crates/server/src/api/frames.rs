//! WebSocket frames (CONTRACT §7): what a client sends, and what the server pushes.

use confidant_core::ConversationId;
use serde::{Deserialize, Serialize};

use super::{Conversation, Message};

/// A frame from the client. Anything else is answered with an `error` frame.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ClientFrame {
    /// The first frame, and later a token refresh.
    Auth {
        token: String,
    },
    /// Send every message of the conversation after `afterSeq`, in order, then live ones.
    #[serde(rename_all = "camelCase")]
    Resume {
        conversation_id: String,
        after_seq: Seq,
    },
    #[serde(rename_all = "camelCase")]
    Typing {
        conversation_id: String,
    },
    #[serde(rename_all = "camelCase")]
    Read {
        conversation_id: String,
        seq: Seq,
    },
    Ping,
}

/// A message position: a whole number from 0 to 2^53 (what a browser's number holds exactly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq(pub i64);

impl<'de> Deserialize<'de> for Seq {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        const MAX: u64 = 1 << 53;
        let n = u64::deserialize(d)?;
        if n > MAX {
            return Err(serde::de::Error::custom("a seq is at most 2^53"));
        }
        i64::try_from(n)
            .map(Seq)
            .map_err(|_| serde::de::Error::custom("a seq is at most 2^53"))
    }
}

/// Who a typing or read event is about.
#[derive(Debug, Clone, Serialize)]
pub struct Party {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A frame from the server.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub enum ServerFrame<'a> {
    #[serde(rename_all = "camelCase")]
    Ready {
        expires_at: Option<i64>,
    },
    Message {
        message: &'a Message,
    },
    Conversation {
        conversation: &'a Conversation,
    },
    /// Agents only (CONTRACT §16): a conversation's status or assignee changed.
    #[serde(rename = "conversation")]
    AgentConversation {
        conversation: &'a super::AgentConversation,
    },
    #[serde(rename_all = "camelCase")]
    Typing {
        conversation_id: ConversationId,
        sender: Party,
    },
    #[serde(rename_all = "camelCase")]
    Read {
        conversation_id: ConversationId,
        reader: Party,
        seq: i64,
    },
    /// Events were dropped: resume what you show.
    #[serde(rename_all = "camelCase")]
    Resync {
        conversation_id: Option<ConversationId>,
    },
    Error {
        code: &'static str,
        message: &'a str,
    },
    /// Agents only: the contact was told by email that a reply waits (CONTRACT §10).
    #[serde(rename_all = "camelCase")]
    Notified {
        conversation_id: ConversationId,
        /// `email`.
        channel: &'static str,
        notified_at: String,
    },
    Pong,
}

impl ServerFrame<'_> {
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail (no maps with non-string keys, no custom errors).
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_typed() {
        let f: ClientFrame =
            serde_json::from_str(r#"{"type":"resume","conversationId":"x","afterSeq":3}"#).unwrap();
        assert!(matches!(
            f,
            ClientFrame::Resume {
                after_seq: Seq(3),
                ..
            }
        ));
        for bad in [
            r#"{"type":"resume","conversationId":"x","afterSeq":18446744073709551616}"#,
            r#"{"type":"resume","conversationId":"x","afterSeq":1e40}"#,
            r#"{"type":"resume","conversationId":"x","afterSeq":"3"}"#,
            r#"{"type":"resume","conversationId":"x","afterSeq":-1}"#,
            r#"{"type":"resume","conversationId":"x","afterSeq":null}"#,
            r#"{"type":"dance"}"#,
            r#"{"token":"t"}"#,
        ] {
            assert!(serde_json::from_str::<ClientFrame>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn server_frames_have_the_contract_shape() {
        assert_eq!(
            ServerFrame::Ready {
                expires_at: Some(5)
            }
            .to_json(),
            r#"{"type":"ready","expiresAt":5}"#
        );
        assert_eq!(
            ServerFrame::Resync {
                conversation_id: None
            }
            .to_json(),
            r#"{"type":"resync","conversationId":null}"#
        );
        assert_eq!(ServerFrame::Pong.to_json(), r#"{"type":"pong"}"#);
    }
}

/// Properties of the client frame parser, the one reader of what a socket's client sends:
/// any text answers a frame or an error (never a panic), well-formed frames read back as
/// themselves, and a `seq` is exactly a whole number from 0 to 2^53.
#[cfg(test)]
mod props {
    use super::*;
    use confidant_testkit::props::{apply, config, edits, hostile_text, json_value};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    const MAX_SEQ: u64 = 1 << 53;

    /// A frame as a client would write it, with the values it should read as.
    fn good_frame() -> impl Strategy<Value = (Value, Value)> {
        let text = || "\\PC{0,64}";
        let seq = || 0..=MAX_SEQ;
        prop_oneof![
            text().prop_map(|t| (json!({"type": "auth", "token": t}), json!(["auth", t]))),
            (text(), seq()).prop_map(|(c, n)| (
                json!({"type": "resume", "conversationId": c, "afterSeq": n}),
                json!(["resume", c, n])
            )),
            text().prop_map(|c| (
                json!({"type": "typing", "conversationId": c}),
                json!(["typing", c])
            )),
            (text(), seq()).prop_map(|(c, n)| (
                json!({"type": "read", "conversationId": c, "seq": n}),
                json!(["read", c, n])
            )),
            Just((json!({"type": "ping"}), json!(["ping"]))),
        ]
    }

    /// What a parsed frame holds, in the shape of `good_frame`'s second value.
    fn summary(frame: &ClientFrame) -> Value {
        match frame {
            ClientFrame::Auth { token } => json!(["auth", token]),
            ClientFrame::Resume {
                conversation_id,
                after_seq,
            } => json!(["resume", conversation_id, after_seq.0]),
            ClientFrame::Typing { conversation_id } => json!(["typing", conversation_id]),
            ClientFrame::Read {
                conversation_id,
                seq,
            } => json!(["read", conversation_id, seq.0]),
            ClientFrame::Ping => json!(["ping"]),
        }
    }

    fn check_any(text: &str) -> Result<(), TestCaseError> {
        if let Ok(frame) = serde_json::from_str::<ClientFrame>(text) {
            for seq in match &frame {
                ClientFrame::Resume { after_seq, .. } => vec![after_seq.0],
                ClientFrame::Read { seq, .. } => vec![seq.0],
                _ => vec![],
            } {
                prop_assert!((0..=MAX_SEQ as i64).contains(&seq), "{text:?}");
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn client_frame_from_any_text(text in hostile_text(200)) {
            check_any(&text)?;
        }

        #[test]
        fn client_frame_from_any_json(value in json_value(), kind in proptest::sample::select(
            vec!["auth", "resume", "typing", "read", "ping", "Ping", "dance"],
        ), typed in any::<bool>()) {
            let value = match (value, typed) {
                (Value::Object(mut map), true) => {
                    map.insert("type".into(), kind.into());
                    Value::Object(map)
                }
                (value, _) => value,
            };
            check_any(&value.to_string())?;
        }

        #[test]
        fn good_client_frames_read_back((frame, expected) in good_frame()) {
            let parsed = serde_json::from_str::<ClientFrame>(&frame.to_string());
            prop_assert!(parsed.is_ok(), "{frame}: {:?}", parsed.err());
            prop_assert_eq!(summary(&parsed.unwrap()), expected);
        }

        #[test]
        fn mutated_client_frames_never_panic((frame, _) in good_frame(), changes in edits()) {
            check_any(&apply(&frame.to_string(), &changes))?;
        }

        #[test]
        fn seq_is_a_whole_number_up_to_2_pow_53(n in prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0..=MAX_SEQ + 2).prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            json_value(),
        ]) {
            let frame = json!({"type": "read", "conversationId": "c", "seq": n});
            let parsed = serde_json::from_str::<ClientFrame>(&frame.to_string());
            let whole = n.as_u64().filter(|n| *n <= MAX_SEQ);
            match (parsed, whole) {
                (Ok(ClientFrame::Read { seq, .. }), Some(expected)) => {
                    prop_assert_eq!(seq.0 as u64, expected);
                }
                (Err(_), None) => {}
                (other, expected) => prop_assert!(false, "{frame}: {other:?}, expected {expected:?}"),
            }
        }
    }
}
