-- SQLite's 0002 adds a trigger that moves a conversation's last_seq with each inserted message,
-- so that its batching writer stores a batch with one statement. PostgreSQL's batches run in a
-- transaction and move last_seq in their own statement: nothing to add here. The file keeps
-- both folders numbered alike.
SELECT 1;
