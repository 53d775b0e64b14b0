-- 0014: the queue helper's actions in the audit log.
--
-- One row per message an action named (one row for an action on none),
-- brought in from the helper's actions log (`queue::record`) by the
-- writer: the intent first (outcome `pending`), then its outcome per
-- message, and `confirmed_ms` once Exim's own line for that message is
-- read (`frozen by`, `unfrozen by`, `removed by`, `cancelled by`, a
-- delivery). `request_id` ties an outcome to its intent's rows.
ALTER TABLE audit_log ADD COLUMN request_id TEXT;
ALTER TABLE audit_log ADD COLUMN client_ip TEXT;
ALTER TABLE audit_log ADD COLUMN outcome TEXT;
ALTER TABLE audit_log ADD COLUMN finished_ms INTEGER;
ALTER TABLE audit_log ADD COLUMN confirmed_ms INTEGER;
CREATE INDEX audit_log_request ON audit_log (request_id) WHERE request_id IS NOT NULL;
