//! Message bodies and client message ids.

use thiserror::Error;

pub const MAX_BODY_CHARS: usize = 10_000;
pub const MAX_CLIENT_MESSAGE_ID_CHARS: usize = 128;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("body must be 1 to 10000 characters of text")]
    BodyLength,
    #[error("body must not contain control characters other than newline and tab")]
    BodyControl,
    #[error("clientMessageId must be 1 to 128 characters")]
    ClientMessageId,
}

/// A message body: 1–10,000 characters (Unicode scalar values) of text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody(String);

impl MessageBody {
    pub fn parse(s: String) -> Result<Self, MessageError> {
        let n = s.chars().count();
        if n == 0 || n > MAX_BODY_CHARS || s.trim().is_empty() {
            return Err(MessageError::BodyLength);
        }
        if s.chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return Err(MessageError::BodyControl);
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// The client's idempotency key for a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessageId(String);

impl ClientMessageId {
    pub fn parse(s: String) -> Result<Self, MessageError> {
        let n = s.chars().count();
        if n == 0 || n > MAX_CLIENT_MESSAGE_ID_CHARS || s.chars().any(char::is_control) {
            return Err(MessageError::ClientMessageId);
        }
        Ok(Self(s))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_bounds() {
        assert!(MessageBody::parse(String::new()).is_err());
        assert!(MessageBody::parse("   ".into()).is_err());
        assert!(MessageBody::parse("x".into()).is_ok());
        assert!(MessageBody::parse("é".repeat(10_000)).is_ok());
        assert!(MessageBody::parse("é".repeat(10_001)).is_err());
        assert!(MessageBody::parse("a\u{0}b".into()).is_err());
        assert!(MessageBody::parse("line\nline".into()).is_ok());
    }
}
