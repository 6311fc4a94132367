-- Attachments (CONTRACT §11). The bytes live in the attachment store (sealed in chunks); this
-- row says whose they are. `conversation_id` and `message_id` stay NULL until a message names
-- the attachment (an agent's upload has its conversation from the start). `filename` is
-- sealed (place attachments.filename|<id>). `key_version` is the site's data-key version the
-- chunks are sealed under.
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

-- A message's attachments: a JSON array of {"attachmentId","filename" (sealed),"contentType","size"}.
ALTER TABLE messages ADD COLUMN attachments TEXT;

-- Storing a message that names attachments claims them in the same statement: each must
-- exist and be unclaimed, else the insert fails whole (two sends racing for one attachment,
-- or the sweep deleting it meanwhile). Messages without attachments skip the trigger.
CREATE TRIGGER messages_claim_attachments AFTER INSERT ON messages
WHEN NEW.attachments IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'confidant_attachment_unavailable')
    WHERE (SELECT count(*) FROM attachments WHERE message_id IS NULL AND attachment_id IN
           (SELECT j.value ->> 'attachmentId' FROM json_each(NEW.attachments) AS j))
          <> json_array_length(NEW.attachments);
    UPDATE attachments SET message_id = NEW.message_id, conversation_id = NEW.conversation_id
    WHERE attachment_id IN (SELECT j.value ->> 'attachmentId' FROM json_each(NEW.attachments) AS j);
END;
