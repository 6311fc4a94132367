-- Confidant schema, SQLite. Kept column-for-column equal to ../postgres/0001_init.sql
-- (integers are 64-bit, ids are text UUIDs, times are Unix milliseconds, flags are 0/1).

CREATE TABLE sites (
    site_id     BIGINT PRIMARY KEY,
    name        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE agents (
    agent_id       TEXT   PRIMARY KEY,
    site_id        BIGINT NOT NULL REFERENCES sites (site_id),
    email          TEXT   NOT NULL,
    email_key      TEXT   NOT NULL,
    name           TEXT   NOT NULL,
    role           TEXT   NOT NULL,
    password_hash  TEXT   NOT NULL,
    created_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX agents_site_email ON agents (site_id, email_key);

CREATE TABLE sessions (
    token_hash  TEXT   PRIMARY KEY,
    agent_id    TEXT   NOT NULL REFERENCES agents (agent_id) ON DELETE CASCADE,
    site_id     BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_agent ON sessions (agent_id);

CREATE TABLE login_failures (
    site_id       BIGINT NOT NULL,
    email_key     TEXT   NOT NULL,
    failures      BIGINT NOT NULL,
    locked_until  BIGINT NOT NULL,
    PRIMARY KEY (site_id, email_key)
);

CREATE TABLE messengers (
    messenger_id  TEXT   PRIMARY KEY,
    site_id       BIGINT NOT NULL REFERENCES sites (site_id),
    name          TEXT   NOT NULL,
    security      TEXT   NOT NULL,
    version       BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX messengers_site ON messengers (site_id);

CREATE TABLE contacts (
    contact_id  TEXT   PRIMARY KEY,
    site_id     BIGINT NOT NULL REFERENCES sites (site_id),
    identity    TEXT   NOT NULL,
    attributes  TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX contacts_site_identity ON contacts (site_id, identity);

CREATE TABLE conversations (
    conversation_id   TEXT   PRIMARY KEY,
    site_id           BIGINT NOT NULL REFERENCES sites (site_id),
    messenger_id      TEXT   NOT NULL REFERENCES messengers (messenger_id),
    contact_id        TEXT   NOT NULL REFERENCES contacts (contact_id),
    status            TEXT   NOT NULL,
    preview           BIGINT NOT NULL,
    last_seq          BIGINT NOT NULL,
    contact_read_seq  BIGINT NOT NULL,
    agent_read_seq    BIGINT NOT NULL,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
-- At most one open conversation per contact and messenger (previews apart).
CREATE UNIQUE INDEX conversations_one_open ON conversations (messenger_id, contact_id, preview) WHERE status = 'open';
CREATE INDEX conversations_site_updated ON conversations (site_id, status, updated_at);
CREATE INDEX conversations_contact ON conversations (contact_id, messenger_id, updated_at);

CREATE TABLE messages (
    message_id         TEXT   PRIMARY KEY,
    conversation_id    TEXT   NOT NULL REFERENCES conversations (conversation_id),
    seq                BIGINT NOT NULL,
    sender_type        TEXT   NOT NULL,
    sender_id          TEXT   NOT NULL,
    sender_name        TEXT   NOT NULL,
    body               TEXT   NOT NULL,
    client_message_id  TEXT,
    created_at         BIGINT NOT NULL
);
CREATE UNIQUE INDEX messages_conversation_seq ON messages (conversation_id, seq);
CREATE UNIQUE INDEX messages_idempotency ON messages (conversation_id, sender_id, client_message_id);

CREATE TABLE signing_keys (
    kid         TEXT   PRIMARY KEY,
    pkcs8       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    retired_at  BIGINT
);
