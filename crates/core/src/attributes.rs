//! The `comm100.*` profile claims of a Contact JWT and the contact attributes they set.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const MAX_ATTRIBUTE_CHARS: usize = 1024;

/// Claim name → attribute name (CONTRACT §6).
pub const CLAIM_ATTRIBUTES: &[(&str, &str)] = &[
    ("comm100.name", "name"),
    ("comm100.alias", "alias"),
    ("comm100.title", "title"),
    ("comm100.company", "company"),
    ("comm100.fax", "fax"),
    ("comm100.phone", "phone"),
    ("comm100.city", "city"),
    ("comm100.state", "state"),
    ("comm100.country", "country"),
    ("comm100.email", "email"),
    ("comm100.sms", "sms"),
    ("comm100.mailing_address", "mailingAddress"),
    ("comm100.zip_address", "zipAddress"),
];

/// A contact's profile attributes, ordered by name so that equal sets serialize equally.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContactAttributes(pub BTreeMap<String, String>);

impl ContactAttributes {
    /// The attributes that a token's claims set: string claims of at most 1,024 characters.
    /// A claim of another type or longer is ignored, never fatal.
    pub fn from_claims(claims: &Map<String, Value>) -> Self {
        let mut out = BTreeMap::new();
        for (claim, attr) in CLAIM_ATTRIBUTES {
            if let Some(Value::String(s)) = claims.get(*claim)
                && s.chars().count() <= MAX_ATTRIBUTE_CHARS
            {
                out.insert((*attr).to_owned(), s.clone());
            }
        }
        Self(out)
    }

    /// `self` updated by `update`: present attributes replace, absent ones stay.
    /// Returns `None` when nothing changes, so a returning contact costs no write.
    pub fn merged(&self, update: &ContactAttributes) -> Option<ContactAttributes> {
        if update.0.iter().all(|(k, v)| self.0.get(k) == Some(v)) {
            return None;
        }
        let mut next = self.0.clone();
        next.extend(update.0.iter().map(|(k, v)| (k.clone(), v.clone())));
        Some(Self(next))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn maps_claims_and_ignores_bad_ones() {
        let claims = json!({
            "comm100.name": "mark tylor",
            "comm100.mailing_address": "1 Main St",
            "comm100.phone": 12345,
            "comm100.city": "x".repeat(1025),
            "comm100.country": "y".repeat(1024),
            "comm100.unknown": "z",
        });
        let a = ContactAttributes::from_claims(claims.as_object().unwrap());
        assert_eq!(a.0.get("name").unwrap(), "mark tylor");
        assert_eq!(a.0.get("mailingAddress").unwrap(), "1 Main St");
        assert!(!a.0.contains_key("phone"));
        assert!(!a.0.contains_key("city"));
        assert_eq!(a.0.get("country").unwrap().len(), 1024);
        assert_eq!(a.0.len(), 3);
    }

    #[test]
    fn merge_keeps_absent_and_reports_no_change() {
        let old =
            ContactAttributes([("name".into(), "a".into()), ("city".into(), "b".into())].into());
        let same = ContactAttributes([("name".into(), "a".into())].into());
        assert_eq!(old.merged(&same), None);
        let new = ContactAttributes([("name".into(), "c".into())].into());
        let m = old.merged(&new).unwrap();
        assert_eq!(m.0.get("name").unwrap(), "c");
        assert_eq!(m.0.get("city").unwrap(), "b");
    }
}
