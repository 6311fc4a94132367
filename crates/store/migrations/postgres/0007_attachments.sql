-- Attachments (CONTRACT §11); see the SQLite file for what the columns mean.
CREATE TABLE attachments (
    attachment_id TEXT PRIMARY KEY,
    site_id BIGINT NOT NULL,
    messenger_id TEXT NOT NULL,
    contact_id TEXT NOT NULL,
    conversation_id TEXT,
    message_id TEXT,
    uploader_type TEXT NOT NULL,
    uploader_id TEXT NOT NULL,
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    object_key TEXT NOT NULL,
    key_version BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX attachments_unreferenced ON attachments (created_at) WHERE message_id IS NULL;
CREATE INDEX attachments_message ON attachments (message_id);
CREATE UNIQUE INDEX attachments_object_key ON attachments (object_key);

ALTER TABLE messages ADD COLUMN attachments TEXT;

-- Storing a message that names attachments claims them in the same statement: each must
-- exist and be unclaimed, else the statement fails whole. A racing claim waits for the row
-- lock and then finds it claimed.
CREATE FUNCTION messages_claim_attachments() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    claimed integer;
BEGIN
    UPDATE attachments SET message_id = NEW.message_id, conversation_id = NEW.conversation_id
    WHERE message_id IS NULL AND attachment_id IN
        (SELECT j.value ->> 'attachmentId' FROM json_array_elements(NEW.attachments::json) AS j);
    GET DIAGNOSTICS claimed = ROW_COUNT;
    IF claimed <> json_array_length(NEW.attachments::json) THEN
        RAISE EXCEPTION 'confidant_attachment_unavailable';
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER messages_claim_attachments AFTER INSERT ON messages
FOR EACH ROW WHEN (NEW.attachments IS NOT NULL)
EXECUTE FUNCTION messages_claim_attachments();
