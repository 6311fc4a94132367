-- Encryption at rest (store/src/vault.rs); kept column-for-column equal to ../sqlite/0003.
-- Each site's data key (site 0: the server's own), wrapped under a master key that the database never holds. A data key has one row per master
-- key it is wrapped under: two while `confidant rotate-master-key` moves to a new master key.
CREATE TABLE data_keys (
    site_id     BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    master_id   TEXT   NOT NULL,
    wrapped     TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (site_id, version, master_id)
);

-- Marks a database that held values in clear before this migration: the store seals them on
-- its next start, then deletes the mark.
CREATE TABLE vault_state (
    name   TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);
INSERT INTO vault_state (name, value)
SELECT 'clear_data', 'seal on start'
WHERE EXISTS (SELECT 1 FROM messages) OR EXISTS (SELECT 1 FROM messengers)
   OR EXISTS (SELECT 1 FROM signing_keys);
