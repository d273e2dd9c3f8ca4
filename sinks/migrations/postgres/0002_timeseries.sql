-- Flavour postgres (plain PostgreSQL 15): the time series as natively range-partitioned tables,
-- the aggregates as tables refreshed incrementally from an invalidation log, and a time_bucket()
-- over date_bin, so that sink, rules and panel SQL are the same as on TimescaleDB.

-- TimescaleDB's time_bucket for timestamptz: buckets aligned on 2000-01-03 00:00 UTC (a Monday).
-- Intervals with months or years are not supported (date_bin refuses them).
CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz) RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN date_bin(bucket_width, ts, timestamptz '2000-01-03 00:00:00+00');

CREATE FUNCTION time_bucket(bucket_width interval, ts timestamptz, origin timestamptz)
RETURNS timestamptz
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN date_bin(bucket_width, ts, origin);

-- Partition width per partitioned table, fixed when the table is created (IOC_STORAGE__CHUNK_INTERVAL).
CREATE TABLE storage_layout (
  table_name text PRIMARY KEY,
  partition_interval interval NOT NULL CHECK (partition_interval > interval '0')
);

CREATE TABLE events (
  time timestamptz NOT NULL,           -- event time (CloudEvents `time`)
  id text NOT NULL,                    -- CloudEvents `id`, unique per producer
  source text NOT NULL,
  type text NOT NULL,
  domain text NOT NULL,
  entity_id text NOT NULL,
  zone_id text,
  lon double precision,
  lat double precision,
  subject text,
  ingest_time timestamptz NOT NULL DEFAULT now(),
  data jsonb NOT NULL DEFAULT '{}',
  PRIMARY KEY (time, id)               -- natural key; time first: appends stay at the index's end
) PARTITION BY RANGE (time);

CREATE TABLE measurements (
  time timestamptz NOT NULL,
  domain text NOT NULL,
  metric text NOT NULL,
  entity_id text NOT NULL,
  zone_id text,
  value double precision NOT NULL,
  unit text,
  PRIMARY KEY (time, entity_id, metric) -- measured: 1.5x faster COPY than (entity_id, metric, time)
) PARTITION BY RANGE (time);

INSERT INTO storage_layout (table_name, partition_interval) VALUES
  ('events', current_setting('ioc.chunk_interval')::interval),
  ('measurements', current_setting('ioc.chunk_interval')::interval);

-- Create the partitions of `parent` covering [from_time, to_time); existing ones are kept.
-- Named <parent>_p<UTC start>, e.g. measurements_p20261123t000000.
CREATE FUNCTION ioc_create_partitions(parent regclass, from_time timestamptz, to_time timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  width interval;
  lo timestamptz;
  part text;
  created integer := 0;
BEGIN
  SELECT partition_interval INTO STRICT width FROM storage_layout WHERE table_name = parent::text;
  lo := time_bucket(width, from_time);
  WHILE lo < to_time LOOP
    part := format('%s_p%s', parent::text, to_char(lo AT TIME ZONE 'UTC', 'YYYYMMDD"t"HH24MISS'));
    IF to_regclass(part) IS NULL THEN
      EXECUTE format('CREATE TABLE %I PARTITION OF %s FOR VALUES FROM (%L) TO (%L)',
                     part, parent, lo, lo + width);
      created := created + 1;
    END IF;
    lo := lo + width;
  END LOOP;
  RETURN created;
END $$;

-- Drop the partitions of `parent` whose upper bound is at or before `older_than`.
CREATE FUNCTION ioc_drop_partitions(parent regclass, older_than timestamptz)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
  part record;
  dropped integer := 0;
BEGIN
  FOR part IN
    SELECT c.oid::regclass AS rel,
           substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz AS upper_bound
    FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
    WHERE i.inhparent = parent
  LOOP
    IF part.upper_bound <= older_than THEN
      EXECUTE format('DROP TABLE %s', part.rel);
      dropped := dropped + 1;
    END IF;
  END LOOP;
  RETURN dropped;
END $$;

SELECT ioc_create_partitions(t::regclass,
         now() - current_setting('ioc.past_partitions')::integer * current_setting('ioc.chunk_interval')::interval,
         now() + current_setting('ioc.premake_partitions')::integer * current_setting('ioc.chunk_interval')::interval)
FROM unnest(ARRAY['events', 'measurements']) AS t;

-- The aggregates: same names and columns as the continuous aggregates of flavour timescale.
CREATE TABLE measurements_1m (
  bucket timestamptz NOT NULL,
  domain text NOT NULL,
  metric text NOT NULL,
  zone_id text,
  count bigint NOT NULL,
  min double precision,
  max double precision,
  avg double precision,
  last double precision
);
CREATE UNIQUE INDEX measurements_1m_key ON measurements_1m (domain, metric, zone_id, bucket) NULLS NOT DISTINCT;
CREATE INDEX measurements_1m_bucket ON measurements_1m (bucket);

CREATE TABLE measurements_1h (LIKE measurements_1m);
CREATE UNIQUE INDEX measurements_1h_key ON measurements_1h (domain, metric, zone_id, bucket) NULLS NOT DISTINCT;
CREATE INDEX measurements_1h_bucket ON measurements_1h (bucket);

-- The invalidation log (as TimescaleDB keeps one per hypertable): the 1-minute buckets that got
-- rows since the last refresh, filled by a statement trigger from the rows actually inserted
-- (ON CONFLICT DO NOTHING duplicates are not in the transition table), late rows included.
CREATE TABLE measurement_invalidations (
  bucket timestamptz NOT NULL
);

CREATE FUNCTION ioc_log_measurement_invalidations() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO measurement_invalidations (bucket)
  SELECT DISTINCT time_bucket(interval '1 minute', time) FROM changed_rows;
  RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION ioc_log_measurement_invalidations() FROM PUBLIC;

CREATE TRIGGER measurements_invalidate_insert AFTER INSERT ON measurements
  REFERENCING NEW TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ioc_log_measurement_invalidations();
CREATE TRIGGER measurements_invalidate_update AFTER UPDATE ON measurements
  REFERENCING NEW TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ioc_log_measurement_invalidations();
CREATE TRIGGER measurements_invalidate_delete AFTER DELETE ON measurements
  REFERENCING OLD TABLE AS changed_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ioc_log_measurement_invalidations();

-- Recompute exactly the buckets named in the log (and latest_values from the earliest): each run of consecutive invalidated minutes is
-- deleted and recomputed from raw rows in measurements_1m, and the hours holding them in
-- measurements_1h. Serialised by an advisory lock; rows logged by transactions that commit while
-- this runs stay in the log for the next refresh.
CREATE FUNCTION ioc_refresh_aggregates()
RETURNS TABLE (aggregate_name text, buckets integer, rows_written bigint)
LANGUAGE plpgsql AS $$
DECLARE
  minutes timestamptz[];
  width interval;
  target text;
  span record;
  n bigint;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('ioc_refresh_aggregates'));
  WITH taken AS (DELETE FROM measurement_invalidations RETURNING bucket)
  SELECT array_agg(DISTINCT bucket ORDER BY bucket) INTO minutes FROM taken;
  IF minutes IS NULL THEN
    RETURN;
  END IF;
  aggregate_name := 'latest_values';
  buckets := cardinality(minutes);
  rows_written := ioc_refresh_latest(minutes[1]);
  RETURN NEXT;
  FOREACH target IN ARRAY ARRAY['measurements_1m', 'measurements_1h'] LOOP
    width := CASE target WHEN 'measurements_1m' THEN interval '1 minute' ELSE interval '1 hour' END;
    aggregate_name := target;
    buckets := 0;
    rows_written := 0;
    FOR span IN
      WITH b AS (SELECT DISTINCT time_bucket(width, m) AS bucket FROM unnest(minutes) AS m),
      islands AS (SELECT bucket, bucket - width * row_number() OVER (ORDER BY bucket) AS island FROM b)
      SELECT min(bucket) AS lo, max(bucket) + width AS hi, count(*)::integer AS n_buckets
      FROM islands GROUP BY island
    LOOP
      EXECUTE format('DELETE FROM %I WHERE bucket >= $1 AND bucket < $2', target) USING span.lo, span.hi;
      EXECUTE format(
        'INSERT INTO %I (bucket, domain, metric, zone_id, count, min, max, avg, last)
         SELECT time_bucket($3, time), domain, metric, zone_id, count(*), min(value), max(value),
                avg(value), (array_agg(value ORDER BY time DESC))[1]
         FROM measurements WHERE time >= $1 AND time < $2
         GROUP BY 1, 2, 3, 4', target) USING span.lo, span.hi, width;
      GET DIAGNOSTICS n = ROW_COUNT;
      rows_written := rows_written + n;
      buckets := buckets + span.n_buckets;
    END LOOP;
    RETURN NEXT;
  END LOOP;
END $$;

SELECT ioc_grant('SELECT, INSERT', 'TABLE events, measurements', 'ioc.ingest_role');
SELECT ioc_grant('SELECT', 'TABLE events, measurements, measurements_1m, measurements_1h', 'ioc.grafana_role');
