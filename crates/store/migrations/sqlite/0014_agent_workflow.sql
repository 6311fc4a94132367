-- Agent workflow (CONTRACT §16), SQLite; kept column-for-column equal to
-- ../postgres/0014_agent_workflow.sql.
--
-- A conversation's assignee: the agent's id, and its name as it was when assigned. Lists show
-- the agent's current name while the agent exists and the stored one after it is deleted, so an
-- assignment outlives its agent (no foreign key: deleting an agent never waits on, nor changes,
-- its conversations). NULL = unassigned.
ALTER TABLE conversations ADD COLUMN assignee_id TEXT;
ALTER TABLE conversations ADD COLUMN assignee_name TEXT;
-- The "Mine" and "one agent's" lists, newest first.
CREATE INDEX conversations_site_assignee ON conversations (site_id, assignee_id, updated_at);
-- A contact's whole history, newest first, whatever the messenger.
CREATE INDEX conversations_contact_updated ON conversations (contact_id, updated_at);

-- Canned replies of a site: a shortcut (`[a-z0-9_-]{1,32}`, unique per site), a title, a body.
CREATE TABLE canned_replies (
    canned_reply_id  TEXT   PRIMARY KEY,
    site_id          BIGINT NOT NULL REFERENCES sites (site_id),
    shortcut         TEXT   NOT NULL,
    title            TEXT   NOT NULL,
    body             TEXT   NOT NULL,
    created_at       BIGINT NOT NULL
);
CREATE UNIQUE INDEX canned_replies_site_shortcut ON canned_replies (site_id, shortcut);
