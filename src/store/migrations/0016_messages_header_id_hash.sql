-- 0016: a message's Message-ID header found by its hash, not its text.
--
-- Each Message-ID is its own: `texts` cannot share it, and the column with
-- its index held it twice, about 40 bytes a message (3% of the database on
-- a log whose every message logs `id=`). The 64-bit hash (FNV-1a of its
-- bytes, `store::text_hash`) and its index take 8 bytes each; `trace`
-- reads the header itself back from the message's `<=` line. The hashes
-- are filled in by code after this script, which then drops the text.
DROP INDEX IF EXISTS messages_header_id;
ALTER TABLE messages ADD COLUMN header_id_hash INTEGER;
CREATE INDEX IF NOT EXISTS messages_header_id_hash ON messages (header_id_hash)
    WHERE header_id_hash IS NOT NULL;
