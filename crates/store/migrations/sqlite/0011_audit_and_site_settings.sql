-- The audit log (CONTRACT §13) and the site settings (§12), SQLite; kept column-for-column
-- equal to ../postgres/0011_audit_and_site_settings.sql.
--
-- One hash chain per site: `seq` counts from 1 within the site, `hash` is the hex SHA-256 of the
-- previous entry's hash and this entry's canonical JSON (store/src/audit.rs). `actor` and
-- `target` are JSON. `audit_heads` holds each chain's last `seq` and `hash`: an append updates
-- its row first, which serializes the appends of one site on PostgreSQL (a row lock held to
-- the commit) and costs nothing under SQLite's one writer.
CREATE TABLE audit_log (
    site_id  BIGINT NOT NULL,
    seq      BIGINT NOT NULL,
    at       BIGINT NOT NULL,
    actor    TEXT   NOT NULL,
    action   TEXT   NOT NULL,
    target   TEXT   NOT NULL,
    ip       TEXT,
    hash     TEXT   NOT NULL,
    PRIMARY KEY (site_id, seq)
);

CREATE TABLE audit_heads (
    site_id  BIGINT PRIMARY KEY,
    seq      BIGINT NOT NULL,
    hash     TEXT   NOT NULL
);

-- Append-only: no statement changes or deletes an entry.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

-- Site settings (§12): NULL idle timeout = the default (60 minutes); NULL retention = keep.
ALTER TABLE sites ADD COLUMN idle_timeout_minutes BIGINT;
ALTER TABLE sites ADD COLUMN require_totp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN retention_days BIGINT;
