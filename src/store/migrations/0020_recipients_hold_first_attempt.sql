-- 0020: a recipient's first delivery attempt is kept in its own row, and
-- a message says whether it ever had a deferral or a failure.
--
-- Most recipients are tried once: a row of `attempts` and an entry in each
-- of its indexes for every delivery was most of what a delivery cost to
-- store. The recipient row now holds its first attempt (`attempt_flag` is
-- NULL until there is one); `attempts` keeps the second and later ones.
-- The view `delivery_attempts` shows both, as before. An attempt's
-- cutthrough and suppressed marks are its flag (`>>`, `*>`), not columns.
ALTER TABLE recipients ADD COLUMN attempt_flag TEXT;
ALTER TABLE recipients ADD COLUMN attempt_ms INTEGER;
-- NULL when it equals the recipient's address, as in `attempts`.
ALTER TABLE recipients ADD COLUMN attempt_final_address TEXT;
ALTER TABLE recipients ADD COLUMN attempt_router_id INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_transport_id INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_host_name_id INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_host_ip_id INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_host_port INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_tls_cipher_id INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_cert_verified INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_smtp_code_id INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_error_text_id INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_error_address_at INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_queue_time_ms INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_delivery_time_ms INTEGER;
ALTER TABLE recipients ADD COLUMN attempt_shadow INTEGER;

-- Whether a message ever had a deferral (`==`) or a failure (`**`):
-- `stats` counts them per message received, which would otherwise ask
-- both tables about every message (one scan of the attempts here).
ALTER TABLE messages ADD COLUMN had_deferral INTEGER NOT NULL DEFAULT 0;
ALTER TABLE messages ADD COLUMN had_failure INTEGER NOT NULL DEFAULT 0;
UPDATE messages SET had_deferral = 1
WHERE id IN (SELECT message_id FROM attempts WHERE flag = '==');
UPDATE messages SET had_failure = 1
WHERE id IN (SELECT message_id FROM attempts WHERE flag = '**');

-- Each recipient's first attempt moves into its row.
CREATE TEMP TABLE first_attempts AS
SELECT min(a.id) AS id FROM attempts a
JOIN recipients r ON r.id = a.recipient_id
GROUP BY a.recipient_id;

UPDATE recipients SET
    attempt_flag = a.flag, attempt_ms = a.attempted_ms,
    attempt_final_address = a.final_address,
    attempt_router_id = a.router_id, attempt_transport_id = a.transport_id,
    attempt_host_name_id = a.host_name_id, attempt_host_ip_id = a.host_ip_id,
    attempt_host_port = a.host_port, attempt_tls_cipher_id = a.tls_cipher_id,
    attempt_cert_verified = a.cert_verified, attempt_smtp_code_id = a.smtp_code_id,
    attempt_error_text_id = a.error_text_id, attempt_error_address_at = a.error_address_at,
    attempt_queue_time_ms = a.queue_time_ms, attempt_delivery_time_ms = a.delivery_time_ms,
    attempt_shadow = a.shadow
FROM attempts a JOIN first_attempts f ON f.id = a.id
WHERE a.recipient_id = recipients.id;

DELETE FROM attempts WHERE id IN (SELECT id FROM first_attempts);
DROP TABLE first_attempts;

-- The attempts in the recipients' rows, by time and by peer, as
-- attempts_time and attempts_host_ip find the others.
CREATE INDEX recipients_attempt_time ON recipients (attempt_ms)
    WHERE attempt_ms IS NOT NULL;
CREATE INDEX recipients_attempt_host_ip ON recipients (attempt_host_ip_id)
    WHERE attempt_host_ip_id IS NOT NULL;

-- The attempts, for reading, as `delivery_attempts` showed them: the
-- first of each recipient (`id` NULL), from the recipients' rows; the
-- later ones, from `attempts`; and every attempt. A query correlated with
-- a recipient reads the first two apart: SQLite does not push such a
-- condition into a UNION ALL view, and would scan both tables.
DROP VIEW delivery_attempts;
CREATE VIEW first_attempts AS
SELECT NULL AS id, r.message_id, r.id AS recipient_id, r.attempt_flag AS flag,
       r.attempt_ms AS attempted_ms,
       coalesce(r.attempt_final_address, r.address) AS final_address,
       CASE r.attempt_flag WHEN '==' THEN 'deferred' WHEN '**' THEN 'failed'
                           ELSE 'delivered' END AS outcome,
       router.text AS router, transport.text AS transport,
       host_name.text AS host_name, host_ip.text AS host_ip, r.attempt_host_port AS host_port,
       tls_cipher.text AS tls_cipher, r.attempt_cert_verified AS cert_verified,
       smtp_code.text AS smtp_code,
       CASE WHEN r.attempt_error_address_at IS NULL THEN error_text.text
            ELSE substr(error_text.text, 1, r.attempt_error_address_at)
                 || coalesce(r.attempt_final_address, r.address)
                 || substr(error_text.text, r.attempt_error_address_at + 1) END AS error_text,
       r.attempt_queue_time_ms AS queue_time_ms, r.attempt_delivery_time_ms AS delivery_time_ms,
       r.attempt_shadow AS shadow, r.attempt_flag = '>>' AS cutthrough,
       r.attempt_flag = '*>' AS suppressed
FROM recipients r
LEFT JOIN texts router ON router.id = r.attempt_router_id
LEFT JOIN texts transport ON transport.id = r.attempt_transport_id
LEFT JOIN texts host_name ON host_name.id = r.attempt_host_name_id
LEFT JOIN texts host_ip ON host_ip.id = r.attempt_host_ip_id
LEFT JOIN texts tls_cipher ON tls_cipher.id = r.attempt_tls_cipher_id
LEFT JOIN texts smtp_code ON smtp_code.id = r.attempt_smtp_code_id
LEFT JOIN texts error_text ON error_text.id = r.attempt_error_text_id
WHERE r.attempt_flag IS NOT NULL;

CREATE VIEW later_attempts AS
SELECT a.id, a.message_id, a.recipient_id, a.flag, a.attempted_ms,
       coalesce(a.final_address, r.address) AS final_address,
       a.outcome,
       router.text AS router, transport.text AS transport,
       host_name.text AS host_name, host_ip.text AS host_ip, a.host_port,
       tls_cipher.text AS tls_cipher, a.cert_verified,
       smtp_code.text AS smtp_code,
       CASE WHEN a.error_address_at IS NULL THEN error_text.text
            ELSE substr(error_text.text, 1, a.error_address_at)
                 || coalesce(a.final_address, r.address)
                 || substr(error_text.text, a.error_address_at + 1) END AS error_text,
       a.queue_time_ms, a.delivery_time_ms, a.shadow, a.cutthrough, a.suppressed
FROM attempts a
LEFT JOIN recipients r ON r.id = a.recipient_id
LEFT JOIN texts router ON router.id = a.router_id
LEFT JOIN texts transport ON transport.id = a.transport_id
LEFT JOIN texts host_name ON host_name.id = a.host_name_id
LEFT JOIN texts host_ip ON host_ip.id = a.host_ip_id
LEFT JOIN texts tls_cipher ON tls_cipher.id = a.tls_cipher_id
LEFT JOIN texts smtp_code ON smtp_code.id = a.smtp_code_id
LEFT JOIN texts error_text ON error_text.id = a.error_text_id;

CREATE VIEW delivery_attempts AS
SELECT * FROM first_attempts UNION ALL SELECT * FROM later_attempts;
