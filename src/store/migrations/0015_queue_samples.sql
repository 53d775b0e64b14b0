-- 0015: Exim's queue size over time, for the flow page's chart.
--
-- The daemon's queue gauge counts the queue through the queue helper once
-- a minute and the writer keeps each count here, timed in the log's clock
-- (local time read as UTC, as line times are stored). Kept for 90 days
-- (store::repo::queue_samples::KEPT_MS): about 130,000 rows at most.
CREATE TABLE queue_samples (
    at_ms INTEGER PRIMARY KEY,
    messages INTEGER NOT NULL,
    frozen INTEGER NOT NULL
);
