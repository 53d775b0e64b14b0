-- 0007: addresses are matched without regard to case, from indexes.
--
-- Mail domains are case-insensitive, and in practice so are local parts
-- (exigrep matches case-insensitively too): `trace Bob@Example.COM` must
-- find bob@example.com. An index serves `= ?1 COLLATE NOCASE` only when it
-- is declared with that collation. IF EXISTS: an interrupted bulk ingest
-- may have left them dropped (every open creates missing ones again).
DROP INDEX IF EXISTS messages_sender;
CREATE INDEX messages_sender ON messages (sender COLLATE NOCASE);
DROP INDEX IF EXISTS recipients_address;
CREATE INDEX recipients_address ON recipients (address COLLATE NOCASE);
DROP INDEX IF EXISTS recipients_final;
CREATE INDEX recipients_final ON recipients (final_address COLLATE NOCASE)
    WHERE final_address IS NOT NULL;
