-- Webhooks (CONTRACT §10), PostgreSQL; kept column-for-column equal to ../sqlite/0009_webhooks.sql.
-- `events` is a JSON array of event names; `secret` is sealed by the vault
-- (place `webhooks.secret|<webhook_id>`); `include_body` is 0/1.
CREATE TABLE webhooks (
    webhook_id    TEXT   PRIMARY KEY,
    site_id       BIGINT NOT NULL REFERENCES sites (site_id),
    url           TEXT   NOT NULL,
    events        TEXT   NOT NULL,
    include_body  BIGINT NOT NULL,
    secret        TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);
CREATE INDEX webhooks_site ON webhooks (site_id, created_at);

-- One row per attempt, the newest 100 per webhook kept (older ones are pruned when a batch
-- of attempts is written). `status` is the HTTP status, or NULL when no answer came
-- (`error` says why).
CREATE TABLE webhook_deliveries (
    delivery_id  TEXT   PRIMARY KEY,
    webhook_id   TEXT   NOT NULL REFERENCES webhooks (webhook_id) ON DELETE CASCADE,
    site_id      BIGINT NOT NULL,
    event_id     TEXT   NOT NULL,
    event_type   TEXT   NOT NULL,
    at           BIGINT NOT NULL,
    status       BIGINT,
    error        TEXT,
    latency_ms   BIGINT NOT NULL,
    delivered    BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_recent ON webhook_deliveries (webhook_id, at, delivery_id);
