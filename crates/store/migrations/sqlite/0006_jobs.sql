-- The durable job queue (issue 12) and the events that feed it.
--
-- One table for every kind of background work: offline notices, webhook deliveries, and the
-- events they come from. A job is due when `run_at` has passed; claiming one moves `run_at`
-- forward by a lease (a process that dies mid-job leaves it to be claimed again when the lease
-- ends), finishing deletes it, a failure moves `run_at` to the next retry. `job_key`, when set,
-- is unique among queued jobs: enqueueing a job whose key is queued does nothing.
--
-- Events are written by triggers in the transaction that stores the message or opens or closes
-- the conversation, so a stored message always has its event, whatever happens to the process
-- afterwards (at least once). Previews produce none.
CREATE TABLE jobs (
    job_id      INTEGER PRIMARY KEY AUTOINCREMENT,
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

CREATE TRIGGER messages_event AFTER INSERT ON messages
BEGIN
    INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at)
    SELECT 'event', c.site_id, NULL,
           json_object('type', 'message.created', 'conversationId', c.conversation_id,
                       'messengerId', c.messenger_id, 'contactId', c.contact_id,
                       'messageId', NEW.message_id, 'seq', NEW.seq,
                       'senderType', NEW.sender_type, 'at', NEW.created_at),
           NEW.created_at, 0, NEW.created_at
    FROM conversations c WHERE c.conversation_id = NEW.conversation_id AND c.preview = 0;
END;

CREATE TRIGGER conversations_created_event AFTER INSERT ON conversations WHEN NEW.preview = 0
BEGIN
    INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at)
    VALUES ('event', NEW.site_id, NULL,
            json_object('type', 'conversation.created', 'conversationId', NEW.conversation_id,
                        'messengerId', NEW.messenger_id, 'contactId', NEW.contact_id,
                        'at', NEW.created_at),
            NEW.created_at, 0, NEW.created_at);
END;

CREATE TRIGGER conversations_closed_event AFTER UPDATE OF status ON conversations
WHEN OLD.status <> 'closed' AND NEW.status = 'closed' AND NEW.preview = 0
BEGIN
    INSERT INTO jobs (kind, site_id, job_key, payload, run_at, attempts, created_at)
    VALUES ('event', NEW.site_id, NULL,
            json_object('type', 'conversation.closed', 'conversationId', NEW.conversation_id,
                        'messengerId', NEW.messenger_id, 'contactId', NEW.contact_id,
                        'at', NEW.updated_at),
            NEW.updated_at, 0, NEW.updated_at);
END;
