-- Both flavours: one role per service, each granted what its code does and nothing more.
-- ioc.notifier_role and ioc.api_role are new settings (IOC_DB__NOTIFIER_USER, IOC_DB__API_USER);
-- `ioc dev up` and the compose initdb create the roles. The grafana role's reads are 0008's.
-- A column list after UPDATE limits what a role may change: the notifier marks an outbox row
-- paged and nothing else, the API cannot rewrite a token's hash or an incident's rule.

CREATE FUNCTION ioc_revoke(privileges text, objects text, role_setting text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('REVOKE %s ON %s FROM %I', privileges, objects, current_setting(role_setting));
END $$;
REVOKE EXECUTE ON FUNCTION ioc_revoke(text, text, text) FROM PUBLIC;

-- Nobody but the owner creates objects in the schema (PostgreSQL 15's default, made explicit).
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- ingest: the pipeline (events, measurements, zones, pipeline_stats, rule state, incidents and
-- their outbox, the relay's published_at). Not the paging tables, not the API's tokens and links,
-- not latest_values (the owner's maintenance refreshes it).
SELECT ioc_revoke('ALL', 'TABLE page_groups, page_members, notifications, silences', 'ioc.ingest_role');
SELECT ioc_revoke('ALL', 'TABLE api_tokens, link_uses, latest_values', 'ioc.ingest_role');
SELECT ioc_revoke('UPDATE', 'TABLE incident_outbox', 'ioc.ingest_role');
SELECT ioc_grant('UPDATE (published_at)', 'TABLE incident_outbox', 'ioc.ingest_role');

-- notifier: outbox -> page groups -> pages -> delivery (notifier/core.py), silences
-- (notifier/silences.py, `ioc paging silence`), zone names for page text.
SELECT ioc_grant('SELECT', 'TABLE incident_outbox, incidents, zones', 'ioc.notifier_role');
SELECT ioc_grant('UPDATE (paged_at)', 'TABLE incident_outbox', 'ioc.notifier_role');
SELECT ioc_grant('INSERT', 'TABLE incident_events', 'ioc.notifier_role');
SELECT ioc_grant('USAGE', 'SEQUENCE incident_events_id_seq', 'ioc.notifier_role');
SELECT ioc_grant('SELECT, INSERT, UPDATE', 'TABLE page_groups, page_members, notifications', 'ioc.notifier_role');
SELECT ioc_grant('SELECT, INSERT', 'TABLE silences', 'ioc.notifier_role');
SELECT ioc_grant('UPDATE (ends_at, expired_by)', 'TABLE silences', 'ioc.notifier_role');

-- api: the incident API, its tokens and one-tap links (api/), people's actions on incidents
-- (sinks.incidents.act: the incident, the rule's state row it holds, history and outbox), and
-- silences (notifier/silences.py). No events, measurements or pages.
SELECT ioc_grant('SELECT, INSERT', 'TABLE api_tokens', 'ioc.api_role');
SELECT ioc_grant('UPDATE (last_used_at, revoked_at)', 'TABLE api_tokens', 'ioc.api_role');
SELECT ioc_grant('SELECT, INSERT', 'TABLE link_uses', 'ioc.api_role');
SELECT ioc_grant('SELECT', 'TABLE incidents, rule_state, zones, page_members', 'ioc.api_role');
SELECT ioc_grant('UPDATE (state, acknowledged_at, acknowledged_by, resolved_at, resolved_by, version, updated_at)',
                 'TABLE incidents', 'ioc.api_role');
SELECT ioc_grant('UPDATE (state, updated_at)', 'TABLE rule_state', 'ioc.api_role');
SELECT ioc_grant('SELECT, INSERT', 'TABLE incident_events', 'ioc.api_role');
SELECT ioc_grant('INSERT', 'TABLE incident_outbox', 'ioc.api_role');
SELECT ioc_grant('USAGE', 'SEQUENCE incident_events_id_seq, incident_outbox_id_seq', 'ioc.api_role');
SELECT ioc_grant('SELECT, INSERT', 'TABLE silences', 'ioc.api_role');
SELECT ioc_grant('UPDATE (ends_at, expired_by)', 'TABLE silences', 'ioc.api_role');
SELECT ioc_grant('SELECT', 'TABLE page_groups', 'ioc.api_role');
SELECT ioc_grant('UPDATE (next_flush_at)', 'TABLE page_groups', 'ioc.api_role');
