-- 0001: the initial schema.
--
-- Times are INTEGER milliseconds since 1970-01-01 in the log's own clock:
-- Exim writes local time without a zone unless log_timezone is set, so the
-- value is "wall-clock time as written", comparable within one host.
-- Append-only: never edit this file once released; add 0002_... instead.

-- One row per log file generation, identified by a fingerprint of its head,
-- so rotation (rename, copytruncate, compression) never changes identity.
CREATE TABLE log_sources (
    id            INTEGER PRIMARY KEY,
    fingerprint   BLOB    NOT NULL UNIQUE,
    path          TEXT    NOT NULL,
    device        INTEGER,
    inode         INTEGER,
    first_seen_ms INTEGER NOT NULL
) STRICT;

-- Where reading of each source stopped. Committed in the same transaction as
-- the rows it covers: after a crash, everything before byte_offset is stored
-- and nothing after it is.
CREATE TABLE ingest_checkpoints (
    source_id     INTEGER PRIMARY KEY REFERENCES log_sources (id),
    byte_offset   INTEGER NOT NULL CHECK (byte_offset >= 0),
    -- The bytes just before byte_offset, to recognise the same file on resume.
    tail_marker   BLOB    NOT NULL,
    updated_ms    INTEGER NOT NULL
) STRICT;

-- Every Exim message seen. A row can exist before its reception line has
-- been read (received_ms IS NULL): lines about a message from an older log
-- create it, and the reception line fills it in when it appears.
CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    exim_id           TEXT    NOT NULL UNIQUE,
    received_ms       INTEGER,
    sender            TEXT,
    size              INTEGER CHECK (size IS NULL OR size >= 0),
    host_name         TEXT,
    helo              TEXT,
    host_ip           TEXT,
    host_port         INTEGER,
    protocol          TEXT,
    tls_cipher        TEXT,
    auth_user         TEXT,
    local_user        TEXT,
    subject           TEXT,
    header_message_id TEXT,
    -- For bounces (`<= <> R=<id>`): the message that caused it.
    parent_exim_id    TEXT,
    status            TEXT    NOT NULL DEFAULT 'received'
        CHECK (status IN ('received', 'deferred', 'frozen', 'completed', 'rejected')),
    frozen            INTEGER NOT NULL DEFAULT 0 CHECK (frozen IN (0, 1)),
    completed_ms      INTEGER,
    last_event_ms     INTEGER
) STRICT;
CREATE INDEX messages_received ON messages (received_ms);
CREATE INDEX messages_sender ON messages (sender);
CREATE INDEX messages_host_ip ON messages (host_ip);
CREATE INDEX messages_parent ON messages (parent_exim_id) WHERE parent_exim_id IS NOT NULL;
CREATE INDEX messages_open ON messages (status, last_event_ms) WHERE status <> 'completed';

-- One row per envelope recipient of a message: the address the sender
-- used, which is the original Exim shows in angle brackets on delivery
-- lines, or the final address when it shows none. Receptions (`for ...`)
-- and delivery lines meet on it.
CREATE TABLE recipients (
    id              INTEGER PRIMARY KEY,
    message_id      INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    address         TEXT    NOT NULL,
    -- Where it was last delivered or tried: an address, a local part, a
    -- pipe or a file.
    final_address   TEXT,
    -- Intermediate parents `(...)` for pipes, files and autoreplies.
    parent_address  TEXT,
    status          TEXT    NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'delivered', 'deferred', 'bounced')),
    last_attempt_ms INTEGER,
    delivered_ms    INTEGER,
    UNIQUE (message_id, address)
) STRICT;
CREATE INDEX recipients_address ON recipients (address);
CREATE INDEX recipients_final ON recipients (final_address) WHERE final_address IS NOT NULL;
CREATE INDEX recipients_open ON recipients (status, last_attempt_ms)
    WHERE status IN ('pending', 'deferred');

-- Every raw line, byte-exact. (source_id, byte_offset) is unique, so
-- replaying a line after a crash or restart is a no-op.
CREATE TABLE log_entries (
    id          INTEGER PRIMARY KEY,
    source_id   INTEGER NOT NULL REFERENCES log_sources (id),
    byte_offset INTEGER NOT NULL CHECK (byte_offset >= 0),
    -- The line's real length without its newline; raw may be shorter when
    -- the line exceeded max_line_bytes (then truncated = 1).
    line_length INTEGER NOT NULL CHECK (line_length >= 0),
    truncated   INTEGER NOT NULL DEFAULT 0 CHECK (truncated IN (0, 1)),
    raw         BLOB    NOT NULL,
    kind        TEXT    NOT NULL,
    logged_ms   INTEGER,
    exim_id     TEXT,
    message_id  INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    UNIQUE (source_id, byte_offset)
) STRICT;
CREATE INDEX log_entries_logged ON log_entries (logged_ms);
CREATE INDEX log_entries_message ON log_entries (message_id) WHERE message_id IS NOT NULL;
CREATE INDEX log_entries_exim_id ON log_entries (exim_id) WHERE exim_id IS NOT NULL;
CREATE INDEX log_entries_kind ON log_entries (kind, logged_ms);

-- One row per delivery result line (=> -> >> *> == **). The attempt, the
-- recipient's status and the message's status change in one transaction.
CREATE TABLE delivery_attempts (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient_id     INTEGER REFERENCES recipients (id) ON DELETE CASCADE,
    log_entry_id     INTEGER UNIQUE REFERENCES log_entries (id) ON DELETE SET NULL,
    attempted_ms     INTEGER NOT NULL,
    final_address    TEXT,
    outcome          TEXT    NOT NULL CHECK (outcome IN ('delivered', 'deferred', 'failed')),
    router           TEXT,
    transport        TEXT,
    host_name        TEXT,
    host_ip          TEXT,
    host_port        INTEGER,
    tls_cipher       TEXT,
    cert_verified    INTEGER CHECK (cert_verified IS NULL OR cert_verified IN (0, 1)),
    confirmation     TEXT,
    smtp_code        TEXT,
    error_text       TEXT,
    queue_time_ms    INTEGER,
    delivery_time_ms INTEGER,
    shadow           INTEGER NOT NULL DEFAULT 0 CHECK (shadow IN (0, 1)),
    cutthrough       INTEGER NOT NULL DEFAULT 0 CHECK (cutthrough IN (0, 1)),
    suppressed       INTEGER NOT NULL DEFAULT 0 CHECK (suppressed IN (0, 1))
) STRICT;
CREATE INDEX delivery_attempts_message ON delivery_attempts (message_id, attempted_ms);
CREATE INDEX delivery_attempts_recipient ON delivery_attempts (recipient_id);
CREATE INDEX delivery_attempts_time ON delivery_attempts (attempted_ms);
CREATE INDEX delivery_attempts_host_ip ON delivery_attempts (host_ip) WHERE host_ip IS NOT NULL;

-- SMTP-time and after-DATA rejections.
CREATE TABLE rejections (
    id           INTEGER PRIMARY KEY,
    log_entry_id INTEGER UNIQUE REFERENCES log_entries (id) ON DELETE SET NULL,
    message_id   INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    rejected_ms  INTEGER NOT NULL,
    stage        TEXT    NOT NULL
        CHECK (stage IN ('connect', 'helo', 'auth', 'mail', 'rcpt', 'data', 'after_data', 'other')),
    host_name    TEXT,
    helo         TEXT,
    host_ip      TEXT,
    sender       TEXT,
    recipient    TEXT,
    reason       TEXT    NOT NULL,
    smtp_code    TEXT,
    temporary    INTEGER NOT NULL DEFAULT 0 CHECK (temporary IN (0, 1))
) STRICT;
CREATE INDEX rejections_time ON rejections (rejected_ms);
CREATE INDEX rejections_host_ip ON rejections (host_ip);
CREATE INDEX rejections_recipient ON rejections (recipient) WHERE recipient IS NOT NULL;

-- What operators and the daemon did to the data (retention runs, manual
-- deletes, schema upgrades), with real wall-clock time.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    actor   TEXT    NOT NULL,
    action  TEXT    NOT NULL,
    detail  TEXT    NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_log_time ON audit_log (at_ms);
