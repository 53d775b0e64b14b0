-- 0009: a message's attempts index carries their flags.
--
-- `stats` over a window asks, for each message received in it, whether any
-- attempt was a deferral (`==`) or a failure (`**`). With the flag in the
-- index that is answered from the index alone, not by a row lookup per
-- attempt; `trace` still reads a message's attempts in time order from it.
-- IF EXISTS: an interrupted bulk ingest may have left it dropped.
DROP INDEX IF EXISTS attempts_message;
CREATE INDEX attempts_message ON attempts (message_id, attempted_ms, flag);
