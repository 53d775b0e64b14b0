-- Partitions are made only for months around now: ten years back to next
-- month. Before, any host role could make four tables for every month up
-- to the year 9999. Rows dated outside the window (a reset clock, garbage)
-- land in each table's default partition, so one such line never stops
-- replication.
CREATE TABLE exim_pilot.lines_other PARTITION OF exim_pilot.lines DEFAULT;
CREATE TABLE exim_pilot.messages_other PARTITION OF exim_pilot.messages DEFAULT;
CREATE TABLE exim_pilot.deliveries_other PARTITION OF exim_pilot.deliveries DEFAULT;
CREATE TABLE exim_pilot.rejections_other PARTITION OF exim_pilot.rejections DEFAULT;

CREATE OR REPLACE FUNCTION exim_pilot.ensure_month(year integer, month integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    lo timestamp;
    hi timestamp;
    suffix text;
    parent text;
    this_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
BEGIN
    IF year < 1 OR year > 9999 OR month < 1 OR month > 12 THEN
        RAISE EXCEPTION 'no such month: %-%', year, month;
    END IF;
    lo := make_timestamp(year, month, 1, 0, 0, 0);
    IF lo < this_month - interval '120 months' OR lo > this_month + interval '1 month' THEN
        RAISE EXCEPTION 'month %-% is outside the window of partitions (ten years back to next month): its rows go to the default partitions', year, month;
    END IF;
    hi := lo + interval '1 month';
    suffix := to_char(lo, '"p"YYYY"_"MM');
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
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'exim_pilot_host') THEN
        GRANT EXECUTE ON FUNCTION exim_pilot.ensure_month(integer, integer) TO exim_pilot_host;
    END IF;
END $$;
