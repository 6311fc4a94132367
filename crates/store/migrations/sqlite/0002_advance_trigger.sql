-- The batching writer stores a whole batch of messages with one INSERT (one statement is one
-- transaction, with no BEGIN/COMMIT round trips); this trigger moves each conversation's
-- last_seq and updated_at with it. Sends stored one by one move last_seq before inserting, so
-- for them the condition is false and the trigger does nothing. (PostgreSQL's batches update
-- the conversations in their own statement, inside their transaction.)
CREATE TRIGGER messages_advance_conversation AFTER INSERT ON messages
BEGIN
    UPDATE conversations SET last_seq = NEW.seq, updated_at = NEW.created_at
    WHERE conversation_id = NEW.conversation_id AND last_seq < NEW.seq;
END;
