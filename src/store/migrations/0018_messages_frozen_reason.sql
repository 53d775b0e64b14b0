-- 0018: why and since when a message was frozen, kept by the writer.
--
-- `stuck` lists every frozen message with Exim's reason and the time of
-- its `Frozen` line; reading them back from each message's lines
-- decompressed a chunk per message (280 ms for the 1,000 listed on 5M
-- lines). The reason is a text id: a host has a handful of them. Messages
-- frozen before this migration have neither; `stuck` reads their lines.
ALTER TABLE messages ADD COLUMN frozen_ms INTEGER;
ALTER TABLE messages ADD COLUMN frozen_reason_id INTEGER;
