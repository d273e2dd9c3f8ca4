-- Flavour postgres: measurements become append-only facts of their event. The sink deduplicates
-- events on (time, id) and writes an event's measurements exactly when the event is newly stored,
-- so measurements need no key of their own: their primary key (and its ON CONFLICT check on every
-- row, ~3.5x the server CPU of an append here) goes, and a BRIN index on time serves the time-range
-- scans (aggregate refresh, latest values, panels) next to partition pruning. Rows are kept.
ALTER TABLE measurements DROP CONSTRAINT measurements_pkey;

-- On the partitioned parent: every partition gets it, and so does every partition created later
-- (ioc_create_partitions). autosummarize: autovacuum summarizes each block range once it fills.
CREATE INDEX measurements_time_brin ON measurements USING brin (time) WITH (autosummarize = on);
