-- 0008: messages, recipients and delivery attempts stored compactly; the
-- attempts' old shape stays readable as the view `delivery_attempts`.
--
-- Rows repeated the few distinct values a host has (routers, transports,
-- peer names and addresses, HELO names, protocols, TLS ciphers, SMTP codes,
-- error texts) and what other columns already say (an attempt's outcome
-- follows from its flag; its final address is nearly always its
-- recipient's address). On a log with many recipients per message the
-- attempts alone were a third of the database.
--
-- - `texts` holds each such value once, found by a hash of its bytes (an
--   index on the text itself would store every text twice); rows refer to
--   it by id. Only the writer adds texts; retention removes those nothing
--   refers to. The hashes are filled in by code after this script.
-- - `attempts.final_address` is NULL when it equals the recipient's
--   address, and so is `recipients.final_address`.
-- - `attempts.outcome` is a generated column, computed from `flag`.
-- - An error text is stored without the address it names (new rows only).
-- - `attempts.recipient_id` is no foreign key: an attempt goes with its
--   message (its cascade), and the key's index cost more than every query
--   it served.
-- - A recipient is found by its message (`recipients_message`); the writer
--   keeps one row per message and address, as it always has, without a
--   UNIQUE index holding every address a second time.
-- - Attempts and recipients have no CHECK constraints: their flags,
--   statuses and booleans come from Rust enums and bools in the writer
--   (model/rules.rs), and the checks cost about a microsecond per row, as
--   much as the rest of the insert (581,000 attempts: 1.25 s with them,
--   0.59 s without).
CREATE TABLE texts (
    id   INTEGER PRIMARY KEY,
    -- 64-bit FNV-1a of the text's UTF-8 bytes (store/texts.rs).
    hash INTEGER NOT NULL,
    text TEXT    NOT NULL
) STRICT;

INSERT INTO texts (hash, text)
    SELECT 0, value FROM (
        SELECT router AS value FROM delivery_attempts
        UNION SELECT transport FROM delivery_attempts
        UNION SELECT host_name FROM delivery_attempts
        UNION SELECT host_ip FROM delivery_attempts
        UNION SELECT tls_cipher FROM delivery_attempts
        UNION SELECT smtp_code FROM delivery_attempts
        UNION SELECT error_text FROM delivery_attempts
        UNION SELECT host_name FROM messages
        UNION SELECT helo FROM messages
        UNION SELECT protocol FROM messages
        UNION SELECT tls_cipher FROM messages)
    WHERE value IS NOT NULL;
-- Only while this migration maps values to ids.
CREATE INDEX texts_by_text ON texts (text);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient_id     INTEGER,
    flag             TEXT    NOT NULL,
    attempted_ms     INTEGER NOT NULL,
    -- NULL when it equals the recipient's address.
    final_address    TEXT,
    router_id        INTEGER,
    transport_id     INTEGER,
    host_name_id     INTEGER,
    host_ip_id       INTEGER,
    host_port        INTEGER,
    tls_cipher_id    INTEGER,
    cert_verified    INTEGER,
    confirmation     TEXT,
    smtp_code_id     INTEGER,
    error_text_id    INTEGER,
    -- Where the address delivered to was cut out of the error text (in
    -- characters): remote servers repeat the recipient in their replies.
    error_address_at INTEGER,
    queue_time_ms    INTEGER,
    delivery_time_ms INTEGER,
    shadow           INTEGER NOT NULL DEFAULT 0,
    cutthrough       INTEGER NOT NULL DEFAULT 0,
    suppressed       INTEGER NOT NULL DEFAULT 0,
    outcome          TEXT GENERATED ALWAYS AS (
        CASE flag WHEN '==' THEN 'deferred' WHEN '**' THEN 'failed' ELSE 'delivered' END
    ) VIRTUAL
) STRICT;

INSERT INTO attempts (
    id, message_id, recipient_id, flag, attempted_ms, final_address, router_id, transport_id,
    host_name_id, host_ip_id, host_port, tls_cipher_id, cert_verified, confirmation,
    smtp_code_id, error_text_id, queue_time_ms, delivery_time_ms, shadow, cutthrough, suppressed)
SELECT a.id, a.message_id, a.recipient_id, a.flag, a.attempted_ms,
       nullif(a.final_address, r.address),
       (SELECT id FROM texts WHERE text = a.router),
       (SELECT id FROM texts WHERE text = a.transport),
       (SELECT id FROM texts WHERE text = a.host_name),
       (SELECT id FROM texts WHERE text = a.host_ip),
       a.host_port,
       (SELECT id FROM texts WHERE text = a.tls_cipher),
       a.cert_verified, a.confirmation,
       (SELECT id FROM texts WHERE text = a.smtp_code),
       (SELECT id FROM texts WHERE text = a.error_text),
       a.queue_time_ms, a.delivery_time_ms, a.shadow, a.cutthrough, a.suppressed
FROM delivery_attempts a LEFT JOIN recipients r ON r.id = a.recipient_id
ORDER BY a.id;
DROP TABLE delivery_attempts;
CREATE INDEX attempts_message ON attempts (message_id, attempted_ms);
CREATE INDEX attempts_time ON attempts (attempted_ms);
CREATE INDEX attempts_host_ip ON attempts (host_ip_id) WHERE host_ip_id IS NOT NULL;

ALTER TABLE messages ADD COLUMN host_name_id INTEGER;
ALTER TABLE messages ADD COLUMN helo_id INTEGER;
ALTER TABLE messages ADD COLUMN protocol_id INTEGER;
ALTER TABLE messages ADD COLUMN tls_cipher_id INTEGER;
UPDATE messages SET
    host_name_id = (SELECT id FROM texts WHERE text = messages.host_name),
    helo_id = (SELECT id FROM texts WHERE text = messages.helo),
    protocol_id = (SELECT id FROM texts WHERE text = messages.protocol),
    tls_cipher_id = (SELECT id FROM texts WHERE text = messages.tls_cipher)
WHERE host_name IS NOT NULL OR helo IS NOT NULL OR protocol IS NOT NULL
   OR tls_cipher IS NOT NULL;
ALTER TABLE messages DROP COLUMN host_name;
ALTER TABLE messages DROP COLUMN helo;
ALTER TABLE messages DROP COLUMN protocol;
ALTER TABLE messages DROP COLUMN tls_cipher;
DROP INDEX texts_by_text;
CREATE INDEX texts_hash ON texts (hash);

CREATE TABLE recipients_0008 (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    address         TEXT    NOT NULL,
    -- Where it was last delivered or tried, when a router rewrote the
    -- address (a local part, a pipe or a file); NULL when it is `address`.
    final_address   TEXT,
    -- Intermediate parents `(...)` for pipes, files and autoreplies.
    parent_address  TEXT,
    status          TEXT    NOT NULL DEFAULT 'pending',
    last_attempt_ms INTEGER,
    delivered_ms    INTEGER
) STRICT;
INSERT INTO recipients_0008 (id, message_id, address, final_address, parent_address, status,
                             last_attempt_ms, delivered_ms)
SELECT id, message_id, address, nullif(final_address, address), parent_address, status,
       last_attempt_ms, delivered_ms
FROM recipients ORDER BY id;
DROP TABLE recipients;
ALTER TABLE recipients_0008 RENAME TO recipients;
CREATE INDEX recipients_message ON recipients (message_id);
-- Queue times of the messages completed in a window (stats).
CREATE INDEX messages_completed ON messages (completed_ms) WHERE completed_ms IS NOT NULL;
CREATE INDEX recipients_address ON recipients (address COLLATE NOCASE);
CREATE INDEX recipients_final ON recipients (final_address COLLATE NOCASE)
    WHERE final_address IS NOT NULL;
CREATE INDEX recipients_open ON recipients (status, last_attempt_ms)
    WHERE status IN ('pending', 'deferred');

-- The attempts' old shape, for reading: every column as it was.
CREATE VIEW delivery_attempts AS
SELECT a.id, a.message_id, a.recipient_id, a.flag, a.attempted_ms,
       coalesce(a.final_address, r.address) AS final_address,
       a.outcome,
       router.text AS router, transport.text AS transport,
       host_name.text AS host_name, host_ip.text AS host_ip, a.host_port,
       tls_cipher.text AS tls_cipher, a.cert_verified, a.confirmation,
       smtp_code.text AS smtp_code,
       CASE WHEN a.error_address_at IS NULL THEN error_text.text
            ELSE substr(error_text.text, 1, a.error_address_at)
                 || coalesce(a.final_address, r.address)
                 || substr(error_text.text, a.error_address_at + 1) END AS error_text,
       a.queue_time_ms, a.delivery_time_ms, a.shadow, a.cutthrough, a.suppressed
FROM attempts a
LEFT JOIN recipients r ON r.id = a.recipient_id
LEFT JOIN texts router ON router.id = a.router_id
LEFT JOIN texts transport ON transport.id = a.transport_id
LEFT JOIN texts host_name ON host_name.id = a.host_name_id
LEFT JOIN texts host_ip ON host_ip.id = a.host_ip_id
LEFT JOIN texts tls_cipher ON tls_cipher.id = a.tls_cipher_id
LEFT JOIN texts smtp_code ON smtp_code.id = a.smtp_code_id
LEFT JOIN texts error_text ON error_text.id = a.error_text_id;

-- How many times retention has removed unused texts: a writer that cached
-- text ids drops its cache when this changes (read in its own transaction,
-- so no removal can slip between the check and the rows that use them).
CREATE TABLE texts_swept (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    sweeps INTEGER NOT NULL
) STRICT;
INSERT INTO texts_swept (id, sweeps) VALUES (1, 0);
