-- A keyed job that is queued again while it runs must run once more afterwards (issue 12: a
-- reply stored while its conversation's notice job was running got no notice). Enqueueing a
-- key that is queued bumps its generation; finishing deletes a job only if its generation is
-- still the one claimed, and otherwise makes it due again at once.
ALTER TABLE jobs ADD COLUMN generation BIGINT NOT NULL DEFAULT 0;
