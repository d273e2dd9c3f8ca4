-- Both flavours: paging. The notifier (notifier/) reads the incident outbox (paged_at is its mark,
-- as published_at is the relay's), puts incidents into page groups, writes one notification row
-- per page and target, and sends them. Every claim is FOR UPDATE SKIP LOCKED, so several
-- notifier processes may run; a notification keeps its id when it is sent again after a crash.

ALTER TABLE incident_outbox ADD COLUMN paged_at timestamptz;
CREATE INDEX incident_outbox_unpaged ON incident_outbox (id) WHERE paged_at IS NULL;

-- An Alertmanager-style group: incidents of one route with the same group_by labels.
CREATE TABLE page_groups (
  id uuid PRIMARY KEY,
  group_key text NOT NULL,             -- route name and label values, or 'storm'
  route text NOT NULL,
  labels jsonb NOT NULL DEFAULT '{}',
  storm boolean NOT NULL DEFAULT false,
  state text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'closed')),
  created_at timestamptz NOT NULL DEFAULT now(),
  first_paged_at timestamptz,
  last_paged_at timestamptz,
  next_flush_at timestamptz,           -- when the group is looked at next (NULL: not due)
  pages integer NOT NULL DEFAULT 0,
  policy text,                         -- the escalation policy, from the route
  escalation_state text NOT NULL DEFAULT 'none'
    CHECK (escalation_state IN ('none', 'running', 'stopped', 'done')),
  escalation_step integer NOT NULL DEFAULT 0,
  escalation_due_at timestamptz,
  escalation_note text,                -- why it stopped
  closed_at timestamptz
);
CREATE UNIQUE INDEX page_groups_one_active ON page_groups (group_key) WHERE state = 'active';
CREATE INDEX page_groups_due ON page_groups (next_flush_at) WHERE state = 'active';
CREATE INDEX page_groups_escalation_due ON page_groups (escalation_due_at)
  WHERE escalation_state = 'running';

-- An incident belongs to one group (the first that took it).
CREATE TABLE page_members (
  incident_id uuid PRIMARY KEY,
  group_id uuid NOT NULL REFERENCES page_groups (id),
  added_at timestamptz NOT NULL DEFAULT now(),
  version integer NOT NULL,            -- the incident's version last seen in the outbox
  state text NOT NULL,
  labels jsonb NOT NULL,               -- zone, domain, severity, rule
  payload jsonb NOT NULL,              -- the outbox payload (sinks.incidents.outbox_payload)
  paged_at timestamptz,                -- first in a page (NULL: never paged)
  resolved_paged boolean NOT NULL DEFAULT false,
  muted_by text                        -- silence:<id>, inhibited:<incident id> or flapping
);
CREATE INDEX page_members_by_group ON page_members (group_id);
CREATE INDEX page_members_recent ON page_members (added_at);

-- One page to one target (an apprise URL named by a secret); the id is the notification id that
-- the e-mail's Message-ID and the webhook's Idempotency-Key carry, so a resend is recognisable.
CREATE TABLE notifications (
  id uuid PRIMARY KEY,
  group_id uuid REFERENCES page_groups (id),
  kind text NOT NULL,                  -- first, update, repeat, storm, escalation
  receiver text NOT NULL,              -- a receiver's name, or role:person for escalation
  secret text NOT NULL,                -- the name of the secret that holds the URL
  subject text NOT NULL,
  body text NOT NULL,
  incidents uuid[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  attempts integer NOT NULL DEFAULT 0,
  last_error text,
  sent_at timestamptz
);
CREATE INDEX notifications_pending ON notifications (next_attempt_at) WHERE sent_at IS NULL;
CREATE INDEX notifications_by_group ON notifications (group_id, created_at);

-- Silences and maintenance windows: matchers (zone, domain, severity, rule: lists of values) that
-- mute matching incidents from starts_at until ends_at.
CREATE TABLE silences (
  id uuid PRIMARY KEY,
  matchers jsonb NOT NULL,
  starts_at timestamptz NOT NULL,
  ends_at timestamptz NOT NULL CHECK (ends_at > starts_at),
  created_by text NOT NULL,
  comment text NOT NULL DEFAULT '',
  created_at timestamptz NOT NULL DEFAULT now(),
  expired_by text                      -- set when a person ends it early
);
CREATE INDEX silences_by_end ON silences (ends_at);

SELECT ioc_grant('SELECT, INSERT, UPDATE', 'TABLE page_groups, page_members, notifications, silences', 'ioc.ingest_role');
SELECT ioc_grant('SELECT', 'TABLE page_groups, notifications, silences', 'ioc.grafana_role');
