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
