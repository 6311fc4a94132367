//! Webhooks (CONTRACT §10): a site's subscriptions, with their secrets sealed, and the log of
//! delivery attempts (the newest [`DELIVERIES_KEPT`] per webhook).

use confidant_core::{ConversationId, MessageId, SiteId};
use serde_json::json;
use sqlx::{FromRow as _, Row as _};

use crate::{Backend, ConversationRow, MessageRow, Result, Store, StoreError};

/// Attempts kept per webhook.
pub const DELIVERIES_KEPT: i64 = 100;

/// A webhook as stored, its secret opened.
#[derive(Debug, Clone)]
pub struct WebhookRow {
    pub webhook_id: uuid::Uuid,
    pub site_id: SiteId,
    pub url: String,
    /// Event names.
    pub events: Vec<String>,
    pub include_body: bool,
    /// The secret as shown to the user once (`whsec_…`).
    pub secret: String,
    pub created_at: i64,
}

/// One delivery attempt.
#[derive(Debug, Clone)]
pub struct DeliveryRow {
    pub delivery_id: uuid::Uuid,
    pub webhook_id: uuid::Uuid,
    pub site_id: SiteId,
    pub event_id: uuid::Uuid,
    pub event_type: String,
    /// When the attempt started (Unix ms).
    pub at: i64,
    /// The HTTP status, if an answer came.
    pub status: Option<i64>,
    /// Why the attempt failed without an answer (timeout, refused, …).
    pub error: Option<String>,
    pub latency_ms: i64,
    pub delivered: bool,
}

const WEBHOOK_COLS: &str = "webhook_id, site_id, url, events, include_body, secret, created_at";

fn secret_place(webhook_id: &uuid::Uuid) -> String {
    crate::place("webhooks.secret", webhook_id)
}

fn decode(e: impl std::error::Error + Send + Sync + 'static, col: &str) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: col.to_owned(),
        source: Box::new(e),
    }
}

impl Store {
    /// Store a new webhook unless the site already has `max` of them (`Conflict`).
    pub async fn create_webhook(
        &self,
        w: &WebhookRow,
        max: i64,
        audit: &crate::AuditEntry,
    ) -> Result<()> {
        let id = w.webhook_id.to_string();
        let sealed = self
            .vault
            .seal_text(w.site_id, &secret_place(&w.webhook_id), &w.secret)
            .await?;
        let events =
            serde_json::to_string(&w.events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.write.begin().await?;
        let done = sqlx::query(
            "INSERT INTO webhooks (webhook_id, site_id, url, events, include_body, secret, created_at) \
             SELECT $1, $2, $3, $4, $5, $6, $7 \
             WHERE (SELECT COUNT(*) FROM webhooks WHERE site_id = $2) < $8",
        )
        .bind(&id)
        .bind(w.site_id.0)
        .bind(&w.url)
        .bind(events)
        .bind(i64::from(w.include_body))
        .bind(sealed)
        .bind(w.created_at)
        .bind(max)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(
                "webhooks: the site has the most webhooks allowed",
            ));
        }
        crate::append_audit(&mut tx, audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// A site's webhooks, oldest first.
    pub async fn list_webhooks(&self, site_id: SiteId) -> Result<Vec<WebhookRow>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks WHERE site_id = $1 ORDER BY created_at, webhook_id"
        )))
        .bind(site_id.0)
        .fetch_all(&self.read)
        .await?;
        self.webhook_rows(&rows).await
    }

    pub async fn get_webhook(
        &self,
        site_id: SiteId,
        webhook_id: uuid::Uuid,
    ) -> Result<Option<WebhookRow>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks WHERE webhook_id = $1 AND site_id = $2"
        )))
        .bind(webhook_id.to_string())
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        Ok(self.webhook_rows(row.as_slice()).await?.pop())
    }

    /// The webhooks of these sites (for turning events into deliveries), in one query.
    pub async fn webhooks_of_sites(&self, sites: &[SiteId]) -> Result<Vec<WebhookRow>> {
        if sites.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<serde_json::Value> = sites.iter().map(|s| json!({ "s": s.0 })).collect();
        let sql = format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks WHERE site_id IN \
             (SELECT CAST(j.value ->> 's' AS BIGINT) FROM {} AS j)",
            self.json_rows(1)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(serde_json::Value::from(ids).to_string())
            .fetch_all(&self.read)
            .await?;
        self.webhook_rows(&rows).await
    }

    /// The webhooks of these ids that still exist, each with its site (callers check that the
    /// site is the one they expected), in one query.
    pub async fn webhooks_by_ids(&self, ids: &[uuid::Uuid]) -> Result<Vec<WebhookRow>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<serde_json::Value> = ids.iter().map(|i| json!({ "i": i })).collect();
        let sql = format!(
            "SELECT {WEBHOOK_COLS} FROM webhooks WHERE webhook_id IN \
             (SELECT j.value ->> 'i' FROM {} AS j)",
            self.json_rows(1)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(serde_json::Value::from(ids).to_string())
            .fetch_all(&self.read)
            .await?;
        self.webhook_rows(&rows).await
    }

    /// `$n`, a JSON array, as a table of rows `j.value` (the backend's function for it).
    fn json_rows(&self, n: usize) -> String {
        match self.backend {
            Backend::Sqlite => format!("json_each(${n})"),
            Backend::Postgres => format!("json_array_elements(${n}::json)"),
        }
    }

    /// Delete a webhook and its delivery log. `false` if the site has no such webhook.
    pub async fn delete_webhook(
        &self,
        site_id: SiteId,
        webhook_id: uuid::Uuid,
        audit: &crate::AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.write.begin().await?;
        let id = webhook_id.to_string();
        let gone = sqlx::query("DELETE FROM webhooks WHERE webhook_id = $1 AND site_id = $2")
            .bind(&id)
            .bind(site_id.0)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone > 0 {
            // Explicit as well as by the foreign key's cascade (SQLite applies it only with
            // foreign_keys on, which every connection sets; this does not depend on it).
            sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1")
                .bind(&id)
                .execute(&mut *tx)
                .await?;
            crate::append_audit(&mut tx, audit).await?;
        }
        tx.commit().await?;
        Ok(gone > 0)
    }

    async fn webhook_rows(&self, rows: &[sqlx::any::AnyRow]) -> Result<Vec<WebhookRow>> {
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id: String = r.try_get("webhook_id")?;
            let webhook_id: uuid::Uuid = id.parse().map_err(|e| decode(e, "webhook_id"))?;
            let events: String = r.try_get("events")?;
            let sealed: String = r.try_get("secret")?;
            out.push(WebhookRow {
                webhook_id,
                site_id: SiteId(r.try_get("site_id")?),
                url: r.try_get("url")?,
                events: serde_json::from_str(&events).map_err(|e| decode(e, "events"))?,
                include_body: r.try_get::<i64, _>("include_body")? != 0,
                secret: self
                    .vault
                    .open_text(&secret_place(&webhook_id), &sealed)
                    .await?,
                created_at: r.try_get("created_at")?,
            });
        }
        Ok(out)
    }

    /// Record attempts in two statements whatever their number (the rows travel as one JSON
    /// array), then keep the newest [`DELIVERIES_KEPT`] of each webhook they touched.
    /// Attempts of a webhook deleted meanwhile are dropped.
    pub async fn record_deliveries(&self, attempts: &[DeliveryRow]) -> Result<()> {
        if attempts.is_empty() {
            return Ok(());
        }
        let rows: Vec<serde_json::Value> = attempts
            .iter()
            .map(|a| {
                json!({
                    "d": a.delivery_id, "w": a.webhook_id, "s": a.site_id.0, "e": a.event_id,
                    "t": a.event_type, "a": a.at, "h": a.status, "x": a.error,
                    "l": a.latency_ms, "ok": i64::from(a.delivered),
                })
            })
            .collect();
        let insert = format!(
            "INSERT INTO webhook_deliveries (delivery_id, webhook_id, site_id, event_id, \
             event_type, at, status, error, latency_ms, delivered) \
             SELECT j.value ->> 'd', j.value ->> 'w', CAST(j.value ->> 's' AS BIGINT), \
             j.value ->> 'e', j.value ->> 't', CAST(j.value ->> 'a' AS BIGINT), \
             CAST(j.value ->> 'h' AS BIGINT), j.value ->> 'x', CAST(j.value ->> 'l' AS BIGINT), \
             CAST(j.value ->> 'ok' AS BIGINT) FROM {} AS j \
             WHERE j.value ->> 'w' IN (SELECT webhook_id FROM webhooks)",
            self.json_rows(1)
        );
        // Each touched webhook keeps its newest rows: those older than its 100th are deleted.
        let prune = format!(
            "DELETE FROM webhook_deliveries WHERE webhook_id IN \
             (SELECT DISTINCT j.value ->> 'w' FROM {} AS j) \
             AND (at, delivery_id) < (SELECT x.at, x.delivery_id FROM webhook_deliveries x \
             WHERE x.webhook_id = webhook_deliveries.webhook_id \
             ORDER BY x.at DESC, x.delivery_id DESC LIMIT 1 OFFSET {})",
            self.json_rows(1),
            DELIVERIES_KEPT - 1
        );
        let rows = serde_json::Value::from(rows).to_string();
        let mut tx = self.write.begin().await?;
        sqlx::query(sqlx::AssertSqlSafe(insert))
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(prune))
            .bind(&rows)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// A webhook's attempts, newest first (at most [`DELIVERIES_KEPT`]).
    pub async fn list_deliveries(
        &self,
        site_id: SiteId,
        webhook_id: uuid::Uuid,
    ) -> Result<Vec<DeliveryRow>> {
        let rows = sqlx::query(
            "SELECT delivery_id, webhook_id, site_id, event_id, event_type, at, status, error, \
             latency_ms, delivered FROM webhook_deliveries WHERE webhook_id = $1 AND site_id = $2 \
             ORDER BY at DESC, delivery_id DESC LIMIT $3",
        )
        .bind(webhook_id.to_string())
        .bind(site_id.0)
        .bind(DELIVERIES_KEPT)
        .fetch_all(&self.read)
        .await?;
        let id = |r: &sqlx::any::AnyRow, col: &str| -> Result<uuid::Uuid> {
            let text: String = r.try_get(col)?;
            Ok(text.parse().map_err(|e| decode(e, col))?)
        };
        rows.iter()
            .map(|r| {
                Ok(DeliveryRow {
                    delivery_id: id(r, "delivery_id")?,
                    webhook_id: id(r, "webhook_id")?,
                    site_id: SiteId(r.try_get("site_id")?),
                    event_id: id(r, "event_id")?,
                    event_type: r.try_get("event_type")?,
                    at: r.try_get("at")?,
                    status: r.try_get("status")?,
                    error: r.try_get("error")?,
                    latency_ms: r.try_get("latency_ms")?,
                    delivered: r.try_get::<i64, _>("delivered")? != 0,
                })
            })
            .collect()
    }

    /// Messages by id with their conversations, in one query, bodies opened; messages of
    /// another site or gone (erased, purged) are missing from the answer.
    pub async fn messages_by_ids(
        &self,
        site_id: SiteId,
        ids: &[MessageId],
    ) -> Result<Vec<(MessageRow, ConversationRow)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<serde_json::Value> =
            ids.iter().map(|i| json!({ "i": i.to_string() })).collect();
        let sql = format!(
            concat!(
                "SELECT ",
                last_msg_cols_m!(),
                ", ",
                conv_cols_c!(),
                " FROM messages m JOIN conversations c ON c.conversation_id = m.conversation_id \
                 WHERE c.site_id = $1 AND m.message_id IN (SELECT j.value ->> 'i' FROM {} AS j)"
            ),
            self.json_rows(2)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(site_id.0)
            .bind(serde_json::Value::from(ids).to_string())
            .fetch_all(&self.read)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in &rows {
            let Some(mut m) = MessageRow::from_prefixed(r, "m_")? else {
                continue;
            };
            self.vault.open_message(&mut m).await?;
            out.push((m, ConversationRow::from_row(r)?));
        }
        Ok(out)
    }

    /// A conversation of the site with its last message (body opened).
    pub async fn conversation_with_last(
        &self,
        site_id: SiteId,
        id: ConversationId,
    ) -> Result<Option<(ConversationRow, Option<MessageRow>)>> {
        let row = sqlx::query(concat!(
            "SELECT ",
            conv_cols_c!(),
            ", ",
            last_msg_cols_m!(),
            " FROM conversations c ",
            last_message_join!(),
            " WHERE c.conversation_id = $1 AND c.site_id = $2"
        ))
        .bind(id.to_string())
        .bind(site_id.0)
        .fetch_optional(&self.read)
        .await?;
        let Some(r) = row else { return Ok(None) };
        let conv = ConversationRow::from_row(&r)?;
        let mut last = MessageRow::from_prefixed(&r, "m_")?;
        if let Some(m) = last.as_mut() {
            self.vault.open_message(m).await?;
        }
        Ok(Some((conv, last)))
    }
}
