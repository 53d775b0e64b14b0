-- 0004: log_entries.exim_id repeated what message_id already says (every
-- line with an Exim id links to its message row, whose exim_id is unique
-- and indexed), and no query read it. Dropping the column and its index
-- saves about 6% of the database and one index write per line.
DROP INDEX log_entries_exim_id;
ALTER TABLE log_entries DROP COLUMN exim_id;
