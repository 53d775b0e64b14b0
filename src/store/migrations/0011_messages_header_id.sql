-- 0011: messages found by their Message-ID header.
--
-- `trace` (and the web view's search) take the header's id as well as an
-- address: support staff are often given only the Message-ID a customer
-- sees, and a message relayed between hosts keeps it.
-- IF NOT EXISTS: every open creates missing secondary indexes, this one
-- included once it is listed (store/indexes.rs).
CREATE INDEX IF NOT EXISTS messages_header_id ON messages (header_message_id)
    WHERE header_message_id IS NOT NULL;
