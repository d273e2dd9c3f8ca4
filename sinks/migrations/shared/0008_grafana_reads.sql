-- Both flavours: the Grafana role reads exactly the relations that a panel or a dashboard variable
-- reads (dashboards/, checked by tests/integration/test_grafana_role.py), and nothing else.
-- Earlier migrations granted it SELECT on page_groups and notifications too: pages hold receiver
-- names and message bodies, and no panel shows them. Everything is revoked first, so this file
-- states the whole grant and a table added later stays unreadable until a migration grants it.
-- On TimescaleDB, a grant on a hypertable covers its chunks, and a grant on a continuous
-- aggregate's view is all a reader needs; measurements_latest reads latest_values as its owner.


-- The pipeline's health per minute, domain and worker, for the panels over hours and days: the
-- workers write a pipeline_stats row per domain every few seconds (17,000 a day per worker and
-- domain), too many to group for every refresh of the wall. Kept up to date by a statement
-- trigger from the rows actually inserted (the writer's ON CONFLICT DO NOTHING repeats are not
-- in the transition table), so both flavours get it the same way; kept as long as the
-- aggregates (sinks/maintenance.py).
CREATE TABLE pipeline_stats_1m (
  bucket timestamptz NOT NULL,
  domain text NOT NULL,
  worker text NOT NULL,
  windows integer NOT NULL,
  received bigint NOT NULL,
  stored bigint NOT NULL,
  duplicates bigint NOT NULL,
  rejected bigint NOT NULL,
  lag_s double precision,              -- sum of lag x window_s: divided by lag_window_s, the
  lag_window_s double precision,       -- time-weighted mean lag of the worker in the minute
  latency_p50_s double precision,      -- the highest of the minute's windows
  latency_p95_s double precision,
  latency_p99_s double precision,
  PRIMARY KEY (bucket, domain, worker)
);

CREATE FUNCTION ioc_rollup_pipeline_stats() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO pipeline_stats_1m AS r (bucket, domain, worker, windows, received, stored,
    duplicates, rejected, lag_s, lag_window_s, latency_p50_s, latency_p95_s, latency_p99_s)
  SELECT time_bucket(interval '1 minute', time), domain, worker, count(*), sum(received),
    sum(stored), sum(duplicates), sum(rejected), sum(lag * window_s),
    sum(window_s) FILTER (WHERE lag IS NOT NULL), max(latency_p50_s), max(latency_p95_s),
    max(latency_p99_s)
  FROM new_rows
  GROUP BY 1, 2, 3
  ON CONFLICT (bucket, domain, worker) DO UPDATE SET
    windows = r.windows + excluded.windows,
    received = r.received + excluded.received,
    stored = r.stored + excluded.stored,
    duplicates = r.duplicates + excluded.duplicates,
    rejected = r.rejected + excluded.rejected,
    lag_s = CASE WHEN r.lag_s IS NULL THEN excluded.lag_s
                 ELSE r.lag_s + coalesce(excluded.lag_s, 0) END,
    lag_window_s = CASE WHEN r.lag_window_s IS NULL THEN excluded.lag_window_s
                        ELSE r.lag_window_s + coalesce(excluded.lag_window_s, 0) END,
    latency_p50_s = greatest(r.latency_p50_s, excluded.latency_p50_s),
    latency_p95_s = greatest(r.latency_p95_s, excluded.latency_p95_s),
    latency_p99_s = greatest(r.latency_p99_s, excluded.latency_p99_s);
  RETURN NULL;
END $$;
REVOKE EXECUTE ON FUNCTION ioc_rollup_pipeline_stats() FROM PUBLIC;

CREATE TRIGGER pipeline_stats_rollup AFTER INSERT ON pipeline_stats
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION ioc_rollup_pipeline_stats();

-- The rows written before this migration.
INSERT INTO pipeline_stats_1m (bucket, domain, worker, windows, received, stored, duplicates,
  rejected, lag_s, lag_window_s, latency_p50_s, latency_p95_s, latency_p99_s)
SELECT time_bucket(interval '1 minute', time), domain, worker, count(*), sum(received),
  sum(stored), sum(duplicates), sum(rejected), sum(lag * window_s),
  sum(window_s) FILTER (WHERE lag IS NOT NULL), max(latency_p50_s), max(latency_p95_s),
  max(latency_p99_s)
FROM pipeline_stats
GROUP BY 1, 2, 3;

DO $$
BEGIN
  EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA public FROM %I',
                 current_setting('ioc.grafana_role'));
  EXECUTE format('REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM %I',
                 current_setting('ioc.grafana_role'));
END $$;

-- The wall and the domain dashboards: time series (aggregates for ranges, raw rows for the last
-- minutes), current values, positions, zones.
SELECT ioc_grant('SELECT', 'TABLE events, measurements, measurements_1m, measurements_1h', 'ioc.grafana_role');
SELECT ioc_grant('SELECT', 'TABLE measurements_latest, zones', 'ioc.grafana_role');
-- The pipeline's health: the wall and the pipeline dashboard's ranges from the rollup, the DLQ's
-- reasons and the workers' last windows from pipeline_stats.
SELECT ioc_grant('SELECT', 'TABLE pipeline_stats, pipeline_stats_1m', 'ioc.grafana_role');
-- The incidents dashboard: incidents, their history (acknowledgements by channel) and silences.
SELECT ioc_grant('SELECT', 'TABLE incidents, incident_events, silences', 'ioc.grafana_role');
