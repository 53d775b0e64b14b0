-- 0017: an attempt's confirmation (`C="..."`) is no longer a column.
--
-- The receiving server's answer names its own queue id: it is each
-- attempt's own, so `texts` cannot share it, and it was stored twice, in
-- the row and in the raw line. `trace` reads it back from the attempt's
-- line while the message's lines are kept (`[retention] log_lines_days`).
DROP VIEW delivery_attempts;
ALTER TABLE attempts DROP COLUMN confirmation;

-- The attempts' old shape, for reading: every column as it was but the
-- confirmation, which is in the lines.
CREATE VIEW delivery_attempts AS
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
