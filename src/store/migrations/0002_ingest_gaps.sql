-- 0002: bytes that could not be read.
--
-- When a log generation disappears before it was read to the end (deleted,
-- rotated past logrotate's `rotate` count while the daemon was down, or
-- truncated with unread bytes that no rotated copy holds), the range is
-- recorded here instead of being skipped silently.
CREATE TABLE ingest_gaps (
    id           INTEGER PRIMARY KEY,
    source_id    INTEGER REFERENCES log_sources (id),
    path         TEXT    NOT NULL,
    start_offset INTEGER NOT NULL CHECK (start_offset >= 0),
    -- NULL when the end is unknown (the file is gone).
    end_offset   INTEGER CHECK (end_offset IS NULL OR end_offset >= start_offset),
    reason       TEXT    NOT NULL,
    detected_ms  INTEGER NOT NULL
) STRICT;
CREATE INDEX ingest_gaps_source ON ingest_gaps (source_id);
