-- 0012: what this database has shipped to a fleet's PostgreSQL.
--
-- `store_identity` names this database file, so the fleet can tell a
-- database rebuilt from scratch (whose chunk ids start again at 1) from
-- the one whose high-water mark it holds. A copy of the file keeps the
-- name: it holds the same chunks.
CREATE TABLE store_identity (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    name     TEXT    NOT NULL
) STRICT;
INSERT INTO store_identity (only_row, name) VALUES (1, lower(hex(randomblob(16))));

-- The newest chunk PostgreSQL has committed, as last heard from it. The
-- truth is PostgreSQL's high-water mark; this copy only lets retention keep
-- every chunk not yet shipped while PostgreSQL cannot be asked.
CREATE TABLE fleet_shipped (
    only_row   INTEGER PRIMARY KEY CHECK (only_row = 1),
    chunk_id   INTEGER NOT NULL CHECK (chunk_id >= 0),
    shipped_ms INTEGER NOT NULL
) STRICT;
