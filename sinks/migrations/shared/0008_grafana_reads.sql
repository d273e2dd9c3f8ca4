-- Both flavours: the Grafana role reads exactly the relations that a panel or a dashboard variable
-- reads (dashboards/, checked by tests/integration/test_grafana_role.py), and nothing else.
-- Earlier migrations granted it SELECT on page_groups and notifications too: pages hold receiver
-- names and message bodies, and no panel shows them. Everything is revoked first, so this file
-- states the whole grant and a table added later stays unreadable until a migration grants it.
-- On TimescaleDB, a grant on a hypertable covers its chunks, and a grant on a continuous
-- aggregate's view is all a reader needs; measurements_latest reads latest_values as its owner.

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
-- The pipeline dashboard and the wall's latency and lag.
SELECT ioc_grant('SELECT', 'TABLE pipeline_stats', 'ioc.grafana_role');
-- The incidents dashboard: incidents, their history (acknowledgements by channel) and silences.
SELECT ioc_grant('SELECT', 'TABLE incidents, incident_events, silences', 'ioc.grafana_role');
