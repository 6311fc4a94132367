-- The audit log (CONTRACT §13) and the site settings (§12), PostgreSQL; kept column-for-column
-- equal to ../sqlite/0011_audit_and_site_settings.sql (see there).
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

-- Append-only: no statement changes or deletes an entry (TRUNCATE included).
CREATE FUNCTION confidant_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION confidant_audit_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION confidant_audit_append_only();

-- Site settings (§12): NULL idle timeout = the default (60 minutes); NULL retention = keep.
ALTER TABLE sites ADD COLUMN idle_timeout_minutes BIGINT;
ALTER TABLE sites ADD COLUMN require_totp BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sites ADD COLUMN retention_days BIGINT;
