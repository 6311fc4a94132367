//! Identifiers. Sites are integers from 10000; everything else is a UUID kept as text in the store.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A site (tenant). The first one created is 10000. Read from JSON as a number or a string of
/// digits (`"siteId": "10000"` is common in HTML data attributes); anything else is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct SiteId(pub i64);

impl<'de> Deserialize<'de> for SiteId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SiteId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a site id such as 10000")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<SiteId, E> {
                i64::try_from(v)
                    .ok()
                    .filter(|v| *v <= SiteId::MAX.0)
                    .map(SiteId)
                    .ok_or_else(|| E::custom("not a site id"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<SiteId, E> {
                (0..=SiteId::MAX.0)
                    .contains(&v)
                    .then_some(SiteId(v))
                    .ok_or_else(|| E::custom("not a site id"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<SiteId, E> {
                v.parse().map_err(|()| E::custom("not a site id"))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl SiteId {
    pub const FIRST: SiteId = SiteId(10_000);
    /// The largest: 2^53 − 1, the largest integer every JSON reader holds exactly.
    pub const MAX: SiteId = SiteId(9_007_199_254_740_991);
}

impl fmt::Display for SiteId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SiteId {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        // Only plain decimal digits: "+10000", " 10000" or "1e4" are not site ids.
        if s.is_empty() || s.len() > 16 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        match s.parse() {
            Ok(v) if v <= Self::MAX.0 => Ok(SiteId(v)),
            _ => Err(()),
        }
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, uuid::Error> {
                Uuid::try_parse(s).map(Self)
            }
        }
    };
}

uuid_id!(/// An embeddable messenger of a site.
    MessengerId);
uuid_id!(/// A verified customer of a site.
    ContactId);
uuid_id!(/// A person of the site who answers conversations.
    AgentId);
uuid_id!(/// A conversation between a contact and the site's agents.
    ConversationId);
uuid_id!(/// One stored message.
    MessageId);
uuid_id!(/// One uploaded file (CONTRACT §11).
    AttachmentId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_id_accepts_only_plain_digits() {
        assert_eq!("10000".parse::<SiteId>(), Ok(SiteId(10000)));
        let from_json = |j: &str| serde_json::from_str::<SiteId>(j).ok();
        assert_eq!(from_json("10000"), Some(SiteId(10000)));
        assert_eq!(from_json("\"10000\""), Some(SiteId(10000)));
        for bad in ["-1", "1.5", "\"1e4\"", "{}", "null", "true"] {
            assert_eq!(from_json(bad), None, "{bad}");
        }
        for bad in [
            "",
            "+10000",
            " 1",
            "1e4",
            "-1",
            "10000a",
            "99999999999999999999",
            "9007199254740992",
        ] {
            assert!(bad.parse::<SiteId>().is_err(), "{bad:?}");
        }
        // The largest is 2^53 − 1, as a number and as digits; one more is refused both ways.
        assert_eq!("9007199254740991".parse::<SiteId>(), Ok(SiteId::MAX));
        assert_eq!(from_json("9007199254740991"), Some(SiteId::MAX));
        assert_eq!(from_json("9007199254740992"), None);
        assert_eq!(from_json("\"9007199254740992\""), None);
    }
}
