-- Messengers can be renamed and deleted (issue 16), SQLite; kept column-for-column equal to
-- ../postgres/0016_messenger_deletion.sql.
--
-- A deleted messenger keeps its row (its conversations name it, and agents still read them
-- until retention or erasure removes them), with the time it was deleted; its Security JSON,
-- shared secret included, is overwritten at deletion. Every read of a live messenger (lists,
-- authorize, access tokens, the frame) asks for deleted_at IS NULL.
ALTER TABLE messengers ADD COLUMN deleted_at BIGINT;
-- The agents' list filtered by messenger, newest first.
CREATE INDEX conversations_site_messenger ON conversations (site_id, messenger_id, updated_at);
