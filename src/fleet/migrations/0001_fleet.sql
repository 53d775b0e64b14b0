-- 0001: the fleet's tables in PostgreSQL.
--
-- Every row is one log line's event on one host, keyed by where the line
-- is: (host, source, line_offset), plus the line's time, which partitions
-- the table by month (a partitioned table's unique keys must hold the
-- partition key). Rows are only inserted, each once: a batch resent after
-- a crash conflicts on the key and changes nothing. Times are the log's own
-- clock, as Exim wrote them, like the hosts' SQLite databases.
-- Append-only: never edit this file once released; add 0002_... instead.

CREATE TABLE exim_pilot.lines (
    host        text      NOT NULL,
    source      bytea     NOT NULL,
    line_offset bigint    NOT NULL,
    logged_at   timestamp NOT NULL,
    kind        text      NOT NULL,
    exim_id     text,
    length      bigint    NOT NULL,
    -- NULL when the host ships rows without raw lines ([fleet] raw_lines).
    raw         bytea,
    PRIMARY KEY (host, source, line_offset, logged_at)
) PARTITION BY RANGE (logged_at);
CREATE INDEX lines_exim_id ON exim_pilot.lines (exim_id) WHERE exim_id IS NOT NULL;
CREATE INDEX lines_host_time ON exim_pilot.lines (host, logged_at);

CREATE TABLE exim_pilot.messages (
    host              text      NOT NULL,
    source            bytea     NOT NULL,
    line_offset       bigint    NOT NULL,
    received_at       timestamp NOT NULL,
    exim_id           text      NOT NULL,
    sender            text      NOT NULL,
    size              bigint,
    peer_name         text,
    peer_ip           text,
    protocol          text,
    auth_user         text,
    header_message_id text,
    parent_exim_id    text,
    subject           text,
    recipients        text,
    PRIMARY KEY (host, source, line_offset, received_at)
) PARTITION BY RANGE (received_at);
CREATE INDEX messages_exim_id ON exim_pilot.messages (exim_id);
CREATE INDEX messages_header_id ON exim_pilot.messages (header_message_id)
    WHERE header_message_id IS NOT NULL;
CREATE INDEX messages_sender ON exim_pilot.messages (lower(sender));
CREATE INDEX messages_peer_ip ON exim_pilot.messages (peer_ip) WHERE peer_ip IS NOT NULL;
CREATE INDEX messages_parent ON exim_pilot.messages (parent_exim_id)
    WHERE parent_exim_id IS NOT NULL;

CREATE TABLE exim_pilot.deliveries (
    host             text      NOT NULL,
    source           bytea     NOT NULL,
    line_offset      bigint    NOT NULL,
    delivered_at     timestamp NOT NULL,
    exim_id          text      NOT NULL,
    flag             text      NOT NULL,
    recipient        text      NOT NULL,
    final_address    text      NOT NULL,
    router           text,
    transport        text,
    peer_name        text,
    peer_ip          text,
    confirmation     text,
    -- The receiving Exim's queue id, from C="250 OK id=...".
    remote_id        text,
    smtp_code        text,
    error            text,
    queue_time_ms    bigint,
    delivery_time_ms bigint,
    PRIMARY KEY (host, source, line_offset, delivered_at)
) PARTITION BY RANGE (delivered_at);
CREATE INDEX deliveries_exim_id ON exim_pilot.deliveries (exim_id);
CREATE INDEX deliveries_recipient ON exim_pilot.deliveries (lower(recipient));
CREATE INDEX deliveries_remote_id ON exim_pilot.deliveries (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX deliveries_peer_ip ON exim_pilot.deliveries (peer_ip) WHERE peer_ip IS NOT NULL;

CREATE TABLE exim_pilot.rejections (
    host        text      NOT NULL,
    source      bytea     NOT NULL,
    line_offset bigint    NOT NULL,
    rejected_at timestamp NOT NULL,
    exim_id     text,
    stage       text      NOT NULL,
    temporary   boolean   NOT NULL,
    peer_name   text,
    peer_ip     text,
    sender      text,
    recipient   text,
    reason      text      NOT NULL,
    smtp_code   text,
    PRIMARY KEY (host, source, line_offset, rejected_at)
) PARTITION BY RANGE (rejected_at);
CREATE INDEX rejections_peer_ip ON exim_pilot.rejections (peer_ip) WHERE peer_ip IS NOT NULL;
CREATE INDEX rejections_recipient ON exim_pilot.rejections (lower(recipient))
    WHERE recipient IS NOT NULL;
CREATE INDEX rejections_sender ON exim_pilot.rejections (lower(sender)) WHERE sender IS NOT NULL;

-- Each host's high-water mark: the last local chunk id whose rows are
-- committed here, for the local database named `database_name`. It moves
-- in the same transaction as the rows, and only from the value the
-- replicating host last read (so two writers cannot both move it).
CREATE TABLE exim_pilot.replication (
    host          text        PRIMARY KEY,
    database_name text        NOT NULL,
    high_water    bigint      NOT NULL CHECK (high_water >= 0),
    lines         bigint      NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Which role may write which host's rows, when hosts sign in with roles of
-- their own (docs/fleet.md). Row-level security below checks it; the
-- owner of the tables is not bound by it.
CREATE TABLE exim_pilot.host_roles (
    host text NOT NULL,
    role name NOT NULL,
    PRIMARY KEY (host, role)
);

-- Partitions are monthly; hosts create the ones they need through this
-- function, which runs with its owner's rights so that hosts need no
-- CREATE privilege. Names are derived from the month alone.
CREATE FUNCTION exim_pilot.ensure_month(year integer, month integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lo timestamp := make_timestamp(year, month, 1, 0, 0, 0);
    hi timestamp := lo + interval '1 month';
    suffix text := to_char(lo, '"p"YYYY"_"MM');
    parent text;
BEGIN
    IF year < 1 OR year > 9999 OR month < 1 OR month > 12 THEN
        RAISE EXCEPTION 'no such month: %-%', year, month;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('exim_pilot.ensure_month'));
    FOREACH parent IN ARRAY ARRAY['lines', 'messages', 'deliveries', 'rejections'] LOOP
        IF to_regclass(format('exim_pilot.%I', parent || '_' || suffix)) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE exim_pilot.%I PARTITION OF exim_pilot.%I FOR VALUES FROM (%L) TO (%L)',
                parent || '_' || suffix, parent, lo, hi);
        END IF;
    END LOOP;
END $$;
REVOKE ALL ON FUNCTION exim_pilot.ensure_month(integer, integer) FROM PUBLIC;

-- Row-level security: a role listed in host_roles writes only its hosts'
-- rows. Everyone allowed to read the tables reads every host's rows.
ALTER TABLE exim_pilot.lines ENABLE ROW LEVEL SECURITY;
ALTER TABLE exim_pilot.messages ENABLE ROW LEVEL SECURITY;
ALTER TABLE exim_pilot.deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE exim_pilot.rejections ENABLE ROW LEVEL SECURITY;
ALTER TABLE exim_pilot.replication ENABLE ROW LEVEL SECURITY;
CREATE POLICY read_all ON exim_pilot.lines FOR SELECT USING (true);
CREATE POLICY read_all ON exim_pilot.messages FOR SELECT USING (true);
CREATE POLICY read_all ON exim_pilot.deliveries FOR SELECT USING (true);
CREATE POLICY read_all ON exim_pilot.rejections FOR SELECT USING (true);
CREATE POLICY read_all ON exim_pilot.replication FOR SELECT USING (true);
CREATE POLICY own_host ON exim_pilot.lines FOR INSERT WITH CHECK (
    EXISTS (SELECT 1 FROM exim_pilot.host_roles r WHERE r.host = lines.host AND r.role = current_user));
CREATE POLICY own_host ON exim_pilot.messages FOR INSERT WITH CHECK (
    EXISTS (SELECT 1 FROM exim_pilot.host_roles r WHERE r.host = messages.host AND r.role = current_user));
CREATE POLICY own_host ON exim_pilot.deliveries FOR INSERT WITH CHECK (
    EXISTS (SELECT 1 FROM exim_pilot.host_roles r WHERE r.host = deliveries.host AND r.role = current_user));
CREATE POLICY own_host ON exim_pilot.rejections FOR INSERT WITH CHECK (
    EXISTS (SELECT 1 FROM exim_pilot.host_roles r WHERE r.host = rejections.host AND r.role = current_user));
CREATE POLICY own_host_insert ON exim_pilot.replication FOR INSERT WITH CHECK (
    EXISTS (SELECT 1 FROM exim_pilot.host_roles r WHERE r.host = replication.host AND r.role = current_user));
CREATE POLICY own_host_update ON exim_pilot.replication FOR UPDATE USING (
    EXISTS (SELECT 1 FROM exim_pilot.host_roles r WHERE r.host = replication.host AND r.role = current_user));

-- The roles hosts and readers are given: NOLOGIN groups an administrator
-- grants to login roles (docs/fleet.md). Made here when the role running
-- the migration may create roles; otherwise the administrator makes them
-- and runs the grants below (docs/fleet.md has them).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'exim_pilot_host')
       AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user
                   AND (rolcreaterole OR rolsuper)) THEN
        CREATE ROLE exim_pilot_host NOLOGIN;
        CREATE ROLE exim_pilot_reader NOLOGIN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'exim_pilot_host') THEN
        GRANT USAGE ON SCHEMA exim_pilot TO exim_pilot_host, exim_pilot_reader;
        GRANT SELECT ON ALL TABLES IN SCHEMA exim_pilot TO exim_pilot_host, exim_pilot_reader;
        GRANT INSERT ON exim_pilot.lines, exim_pilot.messages, exim_pilot.deliveries,
            exim_pilot.rejections, exim_pilot.replication TO exim_pilot_host;
        GRANT UPDATE (database_name, high_water, lines, updated_at) ON exim_pilot.replication
            TO exim_pilot_host;
        GRANT EXECUTE ON FUNCTION exim_pilot.ensure_month(integer, integer) TO exim_pilot_host;
    END IF;
END $$;
