-- Validation rollover (CONTRACT §5 "Rollover"), SQLite; kept column-for-column equal to
-- ../postgres/0015_validation_rollover.sql.
--
-- The validation a Security change replaced, while it keeps verifying Contact JWTs: its JSON,
-- sealed like the Security JSON (it may hold a shared token; the vault's place is
-- "messengers.previous_validation|<messenger id>"), and the end of its period in Unix seconds.
-- Both NULL when no rollover runs. A row whose end has passed is cleared by an hourly purge;
-- until then, every reader ignores it (the end is compared at verify time).
ALTER TABLE messengers ADD COLUMN previous_validation TEXT;
ALTER TABLE messengers ADD COLUMN previous_until BIGINT;
