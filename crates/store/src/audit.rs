//! The audit log (CONTRACT §13): one append-only, hash-chained log per site.
//!
//! An entry is appended **in the transaction of the change it records** ([`append_audit`] takes
//! that transaction's connection), so a change is never stored without its entry, nor an entry
//! without its change. `hash` is the hex SHA-256 of the previous entry's `hash` (64 zeros before
//! the first) followed by this entry's canonical JSON: the entry as the API shows it without
//! `hash`, object keys sorted, no white space ([`canonical_json`]). Anyone holding the entries
//! can recompute the chain; [`Store::verify_audit`] does, and names the first `seq` whose stored
//! hash does not match, or that is missing.
//!
//! The tables refuse `UPDATE` and `DELETE` by trigger on both backends (migration 0011).
//! Entries never hold a secret, a password or a TOTP secret: the callers put ids, emails and
//! names of changed fields in `target`, never values of secret fields.

use aws_lc_rs::digest;
use confidant_core::SiteId;
use confidant_core::time_fmt::rfc3339_millis;
use serde_json::{Map, Value, json};
use sqlx::{AnyConnection, Row as _};

use crate::{Result, Store, StoreError};

/// The hash before the first entry of a chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    Agent {
        id: String,
        email: String,
    },
    Operator,
    /// The server itself (the retention pass, a lockout, a key rotation).
    System,
}

impl Actor {
    pub fn to_json(&self) -> Value {
        match self {
            Actor::Agent { id, email } => json!({"type": "agent", "id": id, "email": email}),
            Actor::Operator => json!({"type": "operator"}),
            Actor::System => json!({"type": "system"}),
        }
    }
}

/// An entry to append.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub site: SiteId,
    pub at: i64,
    pub actor: Actor,
    /// `login.succeeded`, `security.updated`, … (CONTRACT §13).
    pub action: &'static str,
    /// What it was done to: ids, emails, names of changed fields. Never a secret.
    pub target: Value,
    pub ip: Option<String>,
}

impl AuditEntry {
    pub fn new(site: SiteId, at: i64, actor: Actor, action: &'static str, target: Value) -> Self {
        Self {
            site,
            at,
            actor,
            action,
            target,
            ip: None,
        }
    }

    pub fn with_ip(mut self, ip: Option<String>) -> Self {
        self.ip = ip;
        self
    }
}

/// A stored entry.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRow {
    pub seq: i64,
    pub at: i64,
    pub actor: Value,
    pub action: String,
    pub target: Value,
    pub ip: Option<String>,
    pub hash: String,
}

impl AuditRow {
    /// The entry as the API shows it, without `hash`: what the hash covers.
    pub fn body(&self) -> Value {
        let mut m = Map::new();
        m.insert("seq".into(), self.seq.into());
        m.insert("at".into(), rfc3339_millis(self.at).into());
        m.insert("actor".into(), self.actor.clone());
        m.insert("action".into(), self.action.clone().into());
        m.insert("target".into(), self.target.clone());
        if let Some(ip) = &self.ip {
            m.insert("ip".into(), ip.clone().into());
        }
        Value::Object(m)
    }
}

/// What the verify call finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainCheck {
    /// Entries read.
    pub entries: i64,
    /// The first `seq` whose hash does not match its content and predecessor, or that is
    /// missing; `None`: the chain is whole.
    pub broken_at: Option<i64>,
}

/// JSON with object keys sorted at every level and no white space.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                // serde_json keeps insertion order only with `preserve_order`; insert sorted
                // either way so that the text does not depend on that feature.
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(v).to_string()
}

/// `hex(SHA-256(prev_hash || canonical_json(body)))`.
pub fn chain_hash(prev_hash: &str, body: &Value) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(prev_hash.as_bytes());
    ctx.update(canonical_json(body).as_bytes());
    ctx.finish()
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Append `entry` to its site's chain on `conn`, which should be the connection of the
/// transaction that makes the change the entry records.
pub async fn append_audit(conn: &mut AnyConnection, entry: &AuditEntry) -> Result<AuditRow> {
    // Takes the chain's head row (and on PostgreSQL its lock, to the commit).
    let head = sqlx::query(
        "INSERT INTO audit_heads (site_id, seq, hash) VALUES ($1, 1, $2) \
         ON CONFLICT (site_id) DO UPDATE SET seq = audit_heads.seq + 1 RETURNING seq, hash",
    )
    .bind(entry.site.0)
    .bind(GENESIS_HASH)
    .fetch_one(&mut *conn)
    .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev: String = head.try_get("hash")?;
    let mut row = AuditRow {
        seq,
        at: entry.at,
        actor: entry.actor.to_json(),
        action: entry.action.to_owned(),
        target: entry.target.clone(),
        ip: entry.ip.clone(),
        hash: String::new(),
    };
    row.hash = chain_hash(&prev, &row.body());
    sqlx::query("UPDATE audit_heads SET hash = $2 WHERE site_id = $1")
        .bind(entry.site.0)
        .bind(&row.hash)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO audit_log (site_id, seq, at, actor, action, target, ip, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.site.0)
    .bind(seq)
    .bind(row.at)
    .bind(row.actor.to_string())
    .bind(&row.action)
    .bind(row.target.to_string())
    .bind(row.ip.clone())
    .bind(&row.hash)
    .execute(&mut *conn)
    .await?;
    Ok(row)
}

/// Append the same entry to every site's log on `conn` (in the transaction of a change that
/// concerns every site: the keys).
pub(crate) async fn append_audit_to_every_site(
    conn: &mut AnyConnection,
    at: i64,
    actor: &Actor,
    action: &'static str,
    target: &Value,
) -> Result<()> {
    let sites: Vec<(i64,)> = sqlx::query_as("SELECT site_id FROM sites ORDER BY site_id")
        .fetch_all(&mut *conn)
        .await?;
    for (site,) in sites {
        let entry = AuditEntry::new(SiteId(site), at, actor.clone(), action, target.clone());
        append_audit(conn, &entry).await?;
    }
    Ok(())
}

fn audit_row(r: &sqlx::any::AnyRow) -> Result<AuditRow> {
    let json = |col: &str| -> Result<Value> {
        let text: String = r.try_get(col)?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("audit_log.{col}: {e}")))
    };
    Ok(AuditRow {
        seq: r.try_get("seq")?,
        at: r.try_get("at")?,
        actor: json("actor")?,
        action: r.try_get("action")?,
        target: json("target")?,
        ip: r.try_get("ip")?,
        hash: r.try_get("hash")?,
    })
}

impl Store {
    /// Append one entry in a transaction of its own: for events that change nothing else
    /// (a failed login, an export).
    pub async fn audit(&self, entry: &AuditEntry) -> Result<AuditRow> {
        let mut tx = self.write.begin().await?;
        let row = append_audit(&mut tx, entry).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Entries after `after`, in `seq` order, at most `limit`.
    pub async fn audit_page(&self, site: SiteId, after: i64, limit: i64) -> Result<Vec<AuditRow>> {
        let rows = sqlx::query(
            "SELECT seq, at, actor, action, target, ip, hash FROM audit_log \
             WHERE site_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(site.0)
        .bind(after)
        .bind(limit)
        .fetch_all(&self.read)
        .await?;
        rows.iter().map(audit_row).collect()
    }

    /// The `seq` of the site's newest entry (0: none yet).
    pub async fn audit_last_seq(&self, site: SiteId) -> Result<i64> {
        let row: Option<(i64,)> = sqlx::query_as("SELECT seq FROM audit_heads WHERE site_id = $1")
            .bind(site.0)
            .fetch_optional(&self.read)
            .await?;
        Ok(row.map_or(0, |(s,)| s))
    }

    /// Recompute the site's chain from its first entry. Reads in pages, so a long log costs
    /// time, not memory.
    pub async fn verify_audit(&self, site: SiteId) -> Result<ChainCheck> {
        const PAGE: i64 = 2000;
        let mut prev = GENESIS_HASH.to_owned();
        let mut last = 0;
        let mut entries = 0;
        loop {
            let page = self.audit_page(site, last, PAGE).await?;
            for row in &page {
                entries += 1;
                if row.seq != last + 1 || chain_hash(&prev, &row.body()) != row.hash {
                    // A gap names the first missing entry; a mismatch names the altered one.
                    let broken = (last + 1).min(row.seq);
                    return Ok(ChainCheck {
                        entries,
                        broken_at: Some(broken),
                    });
                }
                prev.clone_from(&row.hash);
                last = row.seq;
            }
            if (page.len() as i64) < PAGE {
                break;
            }
        }
        // Entries cut off the end leave the head ahead of the last one read.
        let head: Option<(i64, String)> =
            sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE site_id = $1")
                .bind(site.0)
                .fetch_optional(&self.read)
                .await?;
        let broken_at = match head {
            Some((seq, hash)) if seq != last || hash != prev => Some(last + 1),
            _ => None,
        };
        Ok(ChainCheck { entries, broken_at })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_sorts_keys_at_every_level() {
        let v = json!({"b": 1, "a": {"z": [ {"y": 1, "x": 2} ], "c": null}});
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":null,"z":[{"x":2,"y":1}]},"b":1}"#
        );
    }

    #[test]
    fn the_hash_covers_the_predecessor_and_every_field() {
        let row = AuditRow {
            seq: 1,
            at: 1,
            actor: json!({"type": "operator"}),
            action: "site.created".into(),
            target: json!({"siteId": 10000}),
            ip: None,
            hash: String::new(),
        };
        let h = chain_hash(GENESIS_HASH, &row.body());
        assert_eq!(h.len(), 64);
        assert_ne!(h, chain_hash(&h, &row.body()));
        let mut other = row.clone();
        other.target = json!({"siteId": 10001});
        assert_ne!(h, chain_hash(GENESIS_HASH, &other.body()));
        // The text hashed is fixed: sha256("000…0" + canonical body).
        let text = format!(
            "{GENESIS_HASH}{}",
            r#"{"action":"site.created","actor":{"type":"operator"},"at":"1970-01-01T00:00:00.001Z","seq":1,"target":{"siteId":10000}}"#
        );
        let want: String = digest::digest(&digest::SHA256, text.as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(h, want);
    }
}
