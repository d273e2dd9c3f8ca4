-- Both flavours: the rules' state, incidents, their history and the outbox that the relay and the
-- notifier read. Written by the ingest agents in the same transaction as the batch's events
-- (streams.rules_runner, sinks.incidents), so a batch's events, rule state and incident changes
-- commit together or not at all.

-- One row per (rule, key): the engine's state for that key as JSON (rules.engine). The key is an
-- entity id, a zone id or a source, as the rule says.
CREATE TABLE rule_state (
  rule_id text NOT NULL,
  key text NOT NULL,
  state jsonb NOT NULL DEFAULT '{}',
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (rule_id, key)
);

-- Times are event times (opened_at, last_seen, resolved_at by a rule), except created_at,
-- updated_at, acknowledged_at and a person's resolved_at, which are wall-clock.
CREATE TABLE incidents (
  id uuid PRIMARY KEY,                 -- from (rule, key, event time of opening): same on replay
  rule_id text NOT NULL,
  key text NOT NULL,
  zone_id text,
  entity_id text,
  state text NOT NULL CHECK (state IN ('open', 'acknowledged', 'resolved')),
  severity text NOT NULL,              -- FIWARE Alert: informational, low, medium, high, critical
  category text NOT NULL,              -- FIWARE Alert category
  subcategory text NOT NULL,
  title text NOT NULL,
  description_vi text NOT NULL,
  description_en text NOT NULL,
  opened_at timestamptz NOT NULL,
  last_seen timestamptz NOT NULL,
  resolved_at timestamptz,
  resolved_by text,                    -- 'rule' or the person
  acknowledged_at timestamptz,
  acknowledged_by text,
  count bigint NOT NULL DEFAULT 1,     -- breaching events while open, the opening one included
  last_value double precision,
  peak_value double precision,
  previous_id uuid,                    -- the previous occurrence of the same rule and key
  flapping boolean NOT NULL DEFAULT false,
  flap_count integer NOT NULL DEFAULT 0,
  entities text[] NOT NULL DEFAULT '{}',
  trigger_values jsonb NOT NULL DEFAULT '{}',
  version integer NOT NULL DEFAULT 1,  -- +1 on every change; the outbox is keyed by it
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- One incident per key while it is open: redelivery or two workers can never open two.
CREATE UNIQUE INDEX incidents_one_open_per_key ON incidents (rule_id, key) WHERE state <> 'resolved';
CREATE INDEX incidents_by_state ON incidents (state, opened_at DESC);
CREATE INDEX incidents_by_zone ON incidents (zone_id, opened_at DESC);

-- The history: who, what, when, through which channel.
CREATE TABLE incident_events (
  id bigserial PRIMARY KEY,
  incident_id uuid NOT NULL REFERENCES incidents (id),
  version integer NOT NULL,
  at timestamptz NOT NULL,             -- event time for a rule's transitions, wall-clock for people
  kind text NOT NULL,                  -- opened, updated, resolved, acknowledged, comment
  actor text NOT NULL,                 -- 'rule:<id>' or the person
  channel text NOT NULL,               -- rule, cli, api, link
  detail jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX incident_events_by_incident ON incident_events (incident_id, id);

-- Every transition, written in the transaction that made it; the relay publishes each row to
-- <prefix>.incidents once (published_at), the notifier reads the same rows.
CREATE TABLE incident_outbox (
  id bigserial PRIMARY KEY,
  incident_id uuid NOT NULL,
  version integer NOT NULL,
  kind text NOT NULL,                  -- opened, updated, resolved, acknowledged
  payload jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  published_at timestamptz,
  UNIQUE (incident_id, version, kind)
);
CREATE INDEX incident_outbox_unpublished ON incident_outbox (id) WHERE published_at IS NULL;

SELECT ioc_grant('SELECT, INSERT, UPDATE', 'TABLE rule_state, incidents, incident_events, incident_outbox', 'ioc.ingest_role');
SELECT ioc_grant('USAGE', 'SEQUENCE incident_events_id_seq, incident_outbox_id_seq', 'ioc.ingest_role');
SELECT ioc_grant('SELECT', 'TABLE incidents, incident_events', 'ioc.grafana_role');
