-- Flavour timescale (TimescaleDB 2.x): hypertables, continuous aggregates with refresh policies,
-- compression and retention policies. Same names and columns as flavour postgres.
-- The extension is normally created by the superuser when the database is made
-- (deploy/compose/initdb); IF NOT EXISTS makes this a no-op then.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE events (
  time timestamptz NOT NULL,
  id text NOT NULL,
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
  PRIMARY KEY (time, id)
);
SELECT create_hypertable('events', by_range('time', current_setting('ioc.chunk_interval')::interval),
                         create_default_indexes => false);

CREATE TABLE measurements (
  time timestamptz NOT NULL,
  domain text NOT NULL,
  metric text NOT NULL,
  entity_id text NOT NULL,
  zone_id text,
  value double precision NOT NULL,
  unit text,
  PRIMARY KEY (time, entity_id, metric)
);
SELECT create_hypertable('measurements', by_range('time', current_setting('ioc.chunk_interval')::interval),
                         create_default_indexes => false);

ALTER TABLE events SET (timescaledb.compress, timescaledb.compress_segmentby = 'domain',
                        timescaledb.compress_orderby = 'time DESC, id');
ALTER TABLE measurements SET (timescaledb.compress, timescaledb.compress_segmentby = 'domain, metric',
                              timescaledb.compress_orderby = 'time DESC, entity_id');
SELECT add_compression_policy(t, current_setting('ioc.compress_after')::interval)
FROM unnest(ARRAY['events', 'measurements']::regclass[]) AS t;
SELECT add_retention_policy(t, current_setting('ioc.raw_retention')::interval)
FROM unnest(ARRAY['events', 'measurements']::regclass[]) AS t;

-- Materialized only (no real-time union), like flavour postgres: aggregates are as fresh as their
-- last refresh. `last` ties on time are broken arbitrarily (as on flavour postgres).
CREATE MATERIALIZED VIEW measurements_1m WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT time_bucket(interval '1 minute', time) AS bucket, domain, metric, zone_id,
       count(*) AS count, min(value) AS min, max(value) AS max, avg(value) AS avg,
       last(value, time) AS last
FROM measurements
GROUP BY bucket, domain, metric, zone_id
WITH NO DATA;

CREATE MATERIALIZED VIEW measurements_1h WITH (timescaledb.continuous, timescaledb.materialized_only = true) AS
SELECT time_bucket(interval '1 hour', time) AS bucket, domain, metric, zone_id,
       count(*) AS count, min(value) AS min, max(value) AS max, avg(value) AS avg,
       last(value, time) AS last
FROM measurements
GROUP BY bucket, domain, metric, zone_id
WITH NO DATA;

SELECT add_continuous_aggregate_policy('measurements_1m',
         start_offset => current_setting('ioc.refresh_window')::interval,
         end_offset => NULL, schedule_interval => interval '1 minute');
SELECT add_continuous_aggregate_policy('measurements_1h',
         start_offset => greatest(current_setting('ioc.refresh_window')::interval, interval '3 hours'),
         end_offset => NULL, schedule_interval => interval '5 minutes');
SELECT add_retention_policy(t, current_setting('ioc.aggregate_retention')::interval)
FROM unnest(ARRAY['measurements_1m', 'measurements_1h']::regclass[]) AS t;

SELECT ioc_grant('SELECT, INSERT', 'TABLE events, measurements', 'ioc.ingest_role');
SELECT ioc_grant('SELECT', 'TABLE events, measurements, measurements_1m, measurements_1h', 'ioc.grafana_role');
