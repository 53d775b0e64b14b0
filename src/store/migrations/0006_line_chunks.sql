-- 0006: raw lines in compressed chunks instead of one row per line.
--
-- A row per line cost about four B-tree writes per line (the row, its
-- (source, offset) key, its time index and its message index) and stored
-- the text uncompressed: a third of the database and of ingest time. Now:
--   log_chunks      consecutive lines of one source, framed and compressed
--                   with zstd (see src/store/chunk.rs), one row per few
--                   hundred lines;
--   message_chunks  which chunks hold lines of which message, for trace;
--   line_counts     lines per minute and kind, for stats.
-- The lines themselves are moved by code that runs after this script in the
-- same transaction (migrations.rs), which then drops log_entries.

CREATE TABLE log_chunks (
    id           INTEGER PRIMARY KEY,
    source_id    INTEGER NOT NULL REFERENCES log_sources (id),
    start_offset INTEGER NOT NULL CHECK (start_offset >= 0),
    end_offset   INTEGER NOT NULL CHECK (end_offset >= start_offset),
    lines        INTEGER NOT NULL CHECK (lines > 0),
    -- The oldest and newest time of the chunk's lines; NULL when none has one.
    first_ms     INTEGER,
    last_ms      INTEGER,
    data         BLOB    NOT NULL,
    UNIQUE (source_id, start_offset)
) STRICT;
CREATE INDEX log_chunks_last ON log_chunks (last_ms);

-- No foreign key on chunk_id: retention deletes these rows itself before
-- their chunks, and an index on chunk_id for a cascade would cost a write
-- per row.
CREATE TABLE message_chunks (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    chunk_id   INTEGER NOT NULL,
    PRIMARY KEY (message_id, chunk_id)
) STRICT, WITHOUT ROWID;

-- minute_ms is the line's time rounded down to the minute; lines with no
-- time of their own or inherited count under -9223372036854775808.
CREATE TABLE line_counts (
    minute_ms INTEGER NOT NULL,
    kind      TEXT    NOT NULL,
    lines     INTEGER NOT NULL CHECK (lines > 0),
    PRIMARY KEY (minute_ms, kind)
) STRICT, WITHOUT ROWID;

INSERT INTO line_counts (minute_ms, kind, lines)
SELECT coalesce(logged_ms - (((logged_ms % 60000) + 60000) % 60000), -9223372036854775808),
       kind, count(*)
FROM log_entries GROUP BY 1, 2;

-- Delivery attempts and rejections pointed at their log_entries row. An
-- attempt keeps what that told (which of => -> >> *> == ** it was) in
-- `flag`; both tables are rebuilt, since SQLite cannot drop a UNIQUE column.
CREATE TABLE delivery_attempts_0006 (
    id               INTEGER PRIMARY KEY,
    message_id       INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    recipient_id     INTEGER REFERENCES recipients (id) ON DELETE CASCADE,
    flag             TEXT    NOT NULL CHECK (flag IN ('=>', '->', '>>', '*>', '==', '**')),
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
INSERT INTO delivery_attempts_0006
SELECT a.id, a.message_id, a.recipient_id,
       CASE
           WHEN a.outcome = 'deferred' THEN '=='
           WHEN a.outcome = 'failed' THEN '**'
           WHEN a.cutthrough = 1 THEN '>>'
           WHEN a.suppressed = 1 THEN '*>'
           WHEN e.kind = 'delivery_more' THEN '->'
           ELSE '=>'
       END,
       a.attempted_ms, a.final_address, a.outcome, a.router, a.transport, a.host_name,
       a.host_ip, a.host_port, a.tls_cipher, a.cert_verified, a.confirmation, a.smtp_code,
       a.error_text, a.queue_time_ms, a.delivery_time_ms, a.shadow, a.cutthrough, a.suppressed
FROM delivery_attempts a LEFT JOIN log_entries e ON e.id = a.log_entry_id;
DROP TABLE delivery_attempts;
ALTER TABLE delivery_attempts_0006 RENAME TO delivery_attempts;
CREATE INDEX delivery_attempts_message ON delivery_attempts (message_id, attempted_ms);
CREATE INDEX delivery_attempts_recipient ON delivery_attempts (recipient_id);
CREATE INDEX delivery_attempts_time ON delivery_attempts (attempted_ms);
CREATE INDEX delivery_attempts_host_ip ON delivery_attempts (host_ip) WHERE host_ip IS NOT NULL;

CREATE TABLE rejections_0006 (
    id           INTEGER PRIMARY KEY,
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
INSERT INTO rejections_0006
SELECT id, message_id, rejected_ms, stage, host_name, helo, host_ip, sender, recipient, reason,
       smtp_code, temporary
FROM rejections;
DROP TABLE rejections;
ALTER TABLE rejections_0006 RENAME TO rejections;
CREATE INDEX rejections_time ON rejections (rejected_ms);
CREATE INDEX rejections_host_ip ON rejections (host_ip);
CREATE INDEX rejections_recipient ON rejections (recipient) WHERE recipient IS NOT NULL;
