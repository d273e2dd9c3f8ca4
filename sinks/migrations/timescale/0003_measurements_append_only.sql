-- Flavour timescale: measurements become append-only facts of their event. The sink deduplicates
-- events on (time, id) and writes an event's measurements exactly when the event is newly stored,
-- so measurements need no key of their own: their primary key (and its ON CONFLICT check on every
-- row) goes, replaced by TimescaleDB's usual time index (what create_default_indexes would have
-- made). Rows, continuous aggregates, compression and retention are kept.
ALTER TABLE measurements DROP CONSTRAINT measurements_pkey;
CREATE INDEX measurements_time_idx ON measurements (time DESC);
