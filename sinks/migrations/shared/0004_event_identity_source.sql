-- Both flavours: an event's natural key becomes (time, source, id). CloudEvents 1.0 identifies an
-- event by source + id, so two producers may both use id "1"; time is in the key because the
-- unique index of a hypertable (or a partitioned table) must hold its time column.
-- Works on a database with rows: every (time, id) was unique, so every (time, source, id) is.
-- On TimescaleDB the constraint is rebuilt on every chunk, compressed ones included
-- (tests/integration/test_timescale_flavour.py checks that a compressed chunk still deduplicates).
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD PRIMARY KEY (time, source, id);
