-- Offline notices by email (CONTRACT §10).
--
-- A messenger's notice settings, as JSON ({"email": {"enabled", "afterSeconds", "linkUrl",
-- "subject"}}); no row = the defaults (notices off). Neither secret nor customer content.
CREATE TABLE messenger_notifications (
    messenger_id  TEXT   PRIMARY KEY REFERENCES messengers (messenger_id),
    site_id       BIGINT NOT NULL,
    settings      TEXT   NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Which contacts hold an open socket, per server process (node_id: random per start). A row
-- with sockets > 0 whose seen_at is fresh (heartbeats every 15 s) means "connected now"; a
-- crashed process's rows go stale. seen_at is also the last time the contact was connected
-- there (set when its last socket there closes).
CREATE TABLE contact_presence (
    contact_id  TEXT   NOT NULL,
    node_id     TEXT   NOT NULL,
    site_id     BIGINT NOT NULL,
    sockets     BIGINT NOT NULL,
    seen_at     BIGINT NOT NULL,
    PRIMARY KEY (contact_id, node_id)
);
CREATE INDEX contact_presence_node ON contact_presence (node_id, sockets);

-- The last notice of a conversation: the seq of the agent message it announced and when it
-- went out (Unix ms). 0 / NULL: none yet.
ALTER TABLE conversations ADD COLUMN notice_seq BIGINT NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN noticed_at BIGINT;
