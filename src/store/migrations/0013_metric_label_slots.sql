-- 0013: which label sets of a counted family keep a series of their own.
--
-- A family takes a bounded number of label sets whose values come from the
-- log (transports, SMTP codes). Before this table the first ones seen kept
-- their slots for good, so junk could push `remote_smtp` into `(other)`.
-- Now each set's lines are counted here (`hits`), kept or not; a set that
-- is not kept (a candidate) takes the slot of the rarest kept set once it
-- is clearly more frequent, and the evicted set's counts move into
-- `(other)` (model/label_slots.rs). Counters never go down.
CREATE TABLE metric_label_slots (
    family TEXT NOT NULL,
    labels TEXT NOT NULL,
    hits REAL NOT NULL,
    kept INTEGER NOT NULL,
    PRIMARY KEY (family, labels)
) WITHOUT ROWID;
CREATE INDEX metric_label_slots_by_hits ON metric_label_slots (family, kept, hits);

-- The sets counted so far keep their slots, with what they counted: a
-- histogram's lines are its buckets' sum, a counter's its value.
INSERT INTO metric_label_slots (family, labels, hits, kept)
    SELECT family, labels,
           CASE WHEN max(bucket) >= 0 THEN total(CASE WHEN bucket >= 0 THEN value END)
                ELSE total(value) END,
           1
    FROM metric_counters
    WHERE family IN ('exim_message_errors_total', 'exim_pilot_deliveries_total',
                     'exim_pilot_queue_time_seconds', 'exim_pilot_delivery_time_seconds')
      AND labels NOT LIKE '%(other)%'
    GROUP BY family, labels;
