#!/usr/bin/env bash
# Runs once, when the timescaledb volume is new: the platform's roles (one per service) and its
# database. On a volume made before a role existed, create it the same way by hand (README).
# Passwords come from the same variables the workers read (IOC_DB__*_PASSWORD).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_pw="$IOC_DB__OWNER_PASSWORD" -v ingest_pw="$IOC_DB__INGEST_PASSWORD" \
  -v grafana_pw="$IOC_DB__GRAFANA_PASSWORD" -v notifier_pw="$IOC_DB__NOTIFIER_PASSWORD" \
  -v api_pw="$IOC_DB__API_PASSWORD" -v dbname="$IOC_DB__NAME" <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE ioc_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE ioc_ingest LOGIN PASSWORD :'ingest_pw';
CREATE ROLE ioc_grafana LOGIN PASSWORD :'grafana_pw';
CREATE ROLE ioc_notifier LOGIN PASSWORD :'notifier_pw';
CREATE ROLE ioc_api LOGIN PASSWORD :'api_pw';
CREATE DATABASE :"dbname" OWNER ioc_owner;
\connect :"dbname"
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
REVOKE ALL ON DATABASE :"dbname" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"dbname" TO ioc_ingest, ioc_grafana, ioc_notifier, ioc_api;
SQL
