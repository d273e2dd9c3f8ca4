-- Shared by both flavours: the grant helper, zones, pipeline_stats and the latest value per entity.
-- Parameters arrive as transaction-local settings (set by `ioc db migrate`, see sinks/migrate.py):
--   ioc.owner_role, ioc.ingest_role, ioc.grafana_role and the storage layout (ioc.chunk_interval ...).

-- GRANT to a role whose name comes from Settings (IOC_DB__INGEST_USER ...). `privileges` and
-- `objects` are literals written in these migration files, never data.
CREATE FUNCTION ioc_grant(privileges text, objects text, role_setting text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('GRANT %s ON %s TO %I', privileges, objects, current_setting(role_setting));
END $$;
REVOKE EXECUTE ON FUNCTION ioc_grant(text, text, text) FROM PUBLIC;

-- Reference data loaded by geo/ (GeoJSON); a zone may sit inside a parent zone (ward -> district).
CREATE TABLE zones (
  id text PRIMARY KEY,
  name text NOT NULL,
  kind text NOT NULL,
  parent text,
  geometry text NOT NULL,            -- GeoJSON geometry object, as text
  centroid_lon double precision NOT NULL CHECK (centroid_lon BETWEEN -180 AND 180),
  centroid_lat double precision NOT NULL CHECK (centroid_lat BETWEEN -90 AND 90),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per worker, domain and stats window (streams/metrics.py StatsRow). Idempotent on the key,
-- so a re-sent window does not count twice. Kept as long as raw data (maintenance deletes).
CREATE TABLE pipeline_stats (
  time timestamptz NOT NULL,           -- end of the window
  worker text NOT NULL,
  domain text NOT NULL,
  window_s double precision,           -- length of the window
  received bigint NOT NULL DEFAULT 0,
  stored bigint NOT NULL DEFAULT 0,
  duplicates bigint NOT NULL DEFAULT 0,
  rejected bigint NOT NULL DEFAULT 0,
  rejected_by_reason jsonb NOT NULL DEFAULT '{}',
  lag bigint,                          -- consumer lag summed over the domain's partitions
  latency_p50_s double precision,      -- event time -> database commit
  latency_p95_s double precision,
  latency_p99_s double precision,
  PRIMARY KEY (time, worker, domain)
);

-- The newest measurement per entity and metric, for the wall. Refreshed by the maintenance task
-- together with the aggregates (ioc_refresh_latest), not by the sink: an upsert per entity per
-- batch halved the sink's throughput. Read through the view measurements_latest.
CREATE TABLE latest_values (
  entity_id text NOT NULL,
  metric text NOT NULL,
  domain text NOT NULL,
  zone_id text,
  time timestamptz NOT NULL,
  value double precision NOT NULL,
  unit text,
  PRIMARY KEY (entity_id, metric)
);

CREATE VIEW measurements_latest AS
SELECT entity_id, metric, domain, zone_id, time, value, unit, now() - time AS age
FROM latest_values;

-- Upsert the newest value per entity and metric among the measurements with time >= since.
-- Only moves forward in time, so late rows never overwrite a newer value. The measurements table
-- is created by the flavour's migration; plpgsql resolves it when the function first runs.
CREATE FUNCTION ioc_refresh_latest(since timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
  n bigint;
BEGIN
  INSERT INTO latest_values AS l (entity_id, metric, domain, zone_id, time, value, unit)
  SELECT DISTINCT ON (entity_id, metric) entity_id, metric, domain, zone_id, time, value, unit
  FROM measurements WHERE time >= since
  ORDER BY entity_id, metric, time DESC
  ON CONFLICT (entity_id, metric) DO UPDATE
  SET domain = excluded.domain, zone_id = excluded.zone_id, time = excluded.time,
      value = excluded.value, unit = excluded.unit
  WHERE l.time < excluded.time;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

SELECT ioc_grant('SELECT, INSERT, UPDATE', 'TABLE zones', 'ioc.ingest_role');
SELECT ioc_grant('SELECT, INSERT, UPDATE', 'TABLE pipeline_stats', 'ioc.ingest_role');
SELECT ioc_grant('SELECT, INSERT, UPDATE', 'TABLE latest_values', 'ioc.ingest_role');
SELECT ioc_grant('SELECT', 'TABLE zones, pipeline_stats, measurements_latest', 'ioc.grafana_role');
