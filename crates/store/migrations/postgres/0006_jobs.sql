-- The durable job queue (issue 12) and the events that feed it; see ../sqlite/0006_jobs.sql.
-- Here the message trigger runs once per statement over its transition table, so a batch of
-- sends (one INSERT) writes its events with one INSERT too.
CREATE TABLE jobs (
    job_id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind        TEXT   NOT NULL,
    site_id     BIGINT NOT NULL,
    job_key     TEXT,
    payload     TEXT   NOT NULL,
    run_at      BIGINT NOT NULL,
    attempts    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    last_error  TEXT
);
CREATE INDEX jobs_due ON jobs (run_at);
CREATE UNIQUE INDEX jobs_key ON jobs (job_key);

CREATE FUNCTION confidant_messages_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at)
    SELECT 'event', c.site_id, NULL,
           json_build_object('type', 'message.created', 'conversationId', c.conversation_id,
                             'messengerId', c.messenger_id, 'contactId', c.contact_id,
                             'messageId', m.message_id, 'seq', m.seq,
                             'senderType', m.sender_type, 'at', m.created_at)::text,
           m.created_at, 0, m.created_at
    FROM new_messages m JOIN conversations c ON c.conversation_id = m.conversation_id
    WHERE c.preview = 0
    ORDER BY m.conversation_id, m.seq;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_event AFTER INSERT ON messages
REFERENCING NEW TABLE AS new_messages
FOR EACH STATEMENT EXECUTE FUNCTION confidant_messages_event();

CREATE FUNCTION confidant_conversations_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.preview = 0 THEN
            INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at)
            VALUES ('event', NEW.site_id, NULL,
                    json_build_object('type', 'conversation.created',
                                      'conversationId', NEW.conversation_id,
                                      'messengerId', NEW.messenger_id,
                                      'contactId', NEW.contact_id, 'at', NEW.created_at)::text,
                    NEW.created_at, 0, NEW.created_at);
        END IF;
    ELSIF OLD.status <> 'closed' AND NEW.status = 'closed' AND NEW.preview = 0 THEN
        INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at)
        VALUES ('event', NEW.site_id, NULL,
                json_build_object('type', 'conversation.closed',
                                  'conversationId', NEW.conversation_id,
                                  'messengerId', NEW.messenger_id,
                                  'contactId', NEW.contact_id, 'at', NEW.updated_at)::text,
                NEW.updated_at, 0, NEW.updated_at);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER conversations_created_event AFTER INSERT ON conversations
FOR EACH ROW EXECUTE FUNCTION confidant_conversations_event();
CREATE TRIGGER conversations_closed_event AFTER UPDATE OF status ON conversations
FOR EACH ROW EXECUTE FUNCTION confidant_conversations_event();
