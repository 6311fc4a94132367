-- Single-use WebSocket tickets (issue 11): the agent console trades its session (an HttpOnly
-- cookie it cannot read) for a ticket that opens one agent socket within 60 seconds. Stored
-- hashed, like sessions, so that every server process accepts it; a logout (the session's row
-- deleted) takes its tickets with it. (Numbered 0004: 0003 is left to the encryption work
-- landing beside it.)
CREATE TABLE ws_tickets (
    ticket_hash  TEXT   PRIMARY KEY,
    token_hash   TEXT   NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX ws_tickets_session ON ws_tickets (token_hash);
CREATE INDEX ws_tickets_expiry ON ws_tickets (expires_at);
