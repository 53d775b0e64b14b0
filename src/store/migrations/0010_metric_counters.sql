-- 0010: the metrics' counters, kept by the writer.
--
-- The writer adds what each batch's lines count to these rows in the
-- batch's own transaction (model/counters.rs), so they count exactly the
-- committed lines. Retention never deletes from them: counters do not go
-- down when old lines and rows are pruned. `bucket` is a histogram
-- bucket's index into the model's bounds, or -1 for a counter's value (a
-- histogram's sum).
CREATE TABLE metric_counters (
    family TEXT NOT NULL,
    labels TEXT NOT NULL,
    bucket INTEGER NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (family, labels, bucket)
) WITHOUT ROWID;

-- Flags for the counters: `needs_seed` marks a database that held lines
-- before the counters existed; the writer counts those lines once and
-- deletes the mark in the same transaction.
CREATE TABLE metric_state (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO metric_state (key, value)
    SELECT 'needs_seed', 1 WHERE EXISTS (SELECT 1 FROM log_chunks);
