-- 0003: the audit log in the original design's shape: which message an
-- action was about, and where it came from (the daemon, a command).
ALTER TABLE audit_log ADD COLUMN message_id TEXT;
ALTER TABLE audit_log ADD COLUMN origin TEXT NOT NULL DEFAULT '';
CREATE INDEX audit_log_message ON audit_log (message_id) WHERE message_id IS NOT NULL;
