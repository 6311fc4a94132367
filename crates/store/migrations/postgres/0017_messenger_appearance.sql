-- A messenger's appearance and availability: title, greeting, colour, business hours (an IANA
-- time zone and intervals per weekday), away message and reply time, as JSON (see
-- confidant_core::appearance). No row = the defaults (the messenger's name, the default colour,
-- no hours: always open). Neither secret nor customer content. Goes with its messenger.
CREATE TABLE messenger_appearance (
    messenger_id  TEXT   PRIMARY KEY REFERENCES messengers (messenger_id) ON DELETE CASCADE,
    site_id       BIGINT NOT NULL,
    settings      TEXT   NOT NULL,
    updated_at    BIGINT NOT NULL
);
