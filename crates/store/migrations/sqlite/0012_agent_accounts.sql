-- Agent accounts (CONTRACT §12); kept column-for-column equal between sqlite/ and postgres/.
--
-- agents: `disabled` (0/1); `totp_secret` the confirmed TOTP secret and `totp_pending` the one
-- being set up, both sealed by the vault (place `agents.totp_secret|<agentId>` /
-- `agents.totp_pending|<agentId>`), never in clear; `totp_last_step` the last 30-second step
-- whose code was taken (a code of that step or an earlier one is refused: no replay);
-- `last_login_at` Unix ms or NULL.
ALTER TABLE agents ADD COLUMN disabled BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN totp_secret TEXT;
ALTER TABLE agents ADD COLUMN totp_pending TEXT;
ALTER TABLE agents ADD COLUMN totp_last_step BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN last_login_at BIGINT;

-- sessions: a public id (the token hash stays secret-ish: it opens WebSocket tickets), where it
-- came from, and when it was last used (the idle timeout's truth, written at most about once a
-- second per session); `totp_setup_only` 1 when it logged in while its site required TOTP and
-- the agent had none (it may only set TOTP up, until it has). Rows older than this migration
-- get their token hash's prefix as id.
ALTER TABLE sessions ADD COLUMN session_id TEXT;
ALTER TABLE sessions ADD COLUMN ip TEXT;
ALTER TABLE sessions ADD COLUMN user_agent TEXT;
ALTER TABLE sessions ADD COLUMN last_seen_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN totp_setup_only BIGINT NOT NULL DEFAULT 0;
UPDATE sessions SET session_id = substr(token_hash, 1, 32), last_seen_at = created_at;
CREATE UNIQUE INDEX sessions_session_id ON sessions (session_id);
