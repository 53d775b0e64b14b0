-- 0019: a message's subject is no longer a column.
--
-- The subject (`T="..."`) is in the message's `<=` line, which the chunks
-- keep; no query filters or sorts by it, and `trace` (the only reader)
-- reads it back from that line while the lines are kept (`[retention]
-- log_lines_days`), as it does the Message-ID and the confirmations. On
-- real logs nearly every subject is different, so the column held as many
-- bytes as the subjects themselves, stored twice.
ALTER TABLE messages DROP COLUMN subject;
