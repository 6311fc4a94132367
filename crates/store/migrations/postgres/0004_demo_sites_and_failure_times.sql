-- The sites that `confidant demo` made (CONTRACT §9): the demo starts only on a database whose
-- every site is listed here, so it never takes over a real site.
CREATE TABLE demo_sites (
    site_id  BIGINT PRIMARY KEY REFERENCES sites (site_id)
);

-- When a login failure was last counted, so that old rows can be purged (0 for rows written
-- before this column: purged once their lock, if any, has run out).
ALTER TABLE login_failures ADD COLUMN updated_at BIGINT NOT NULL DEFAULT 0;
