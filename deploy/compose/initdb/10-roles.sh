#!/usr/bin/env bash
# Runs once, when the timescaledb volume is new: the three roles of the platform and its database.
# Passwords come from the same variables the workers read (IOC_DB__*_PASSWORD).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v owner_pw="$IOC_DB__OWNER_PASSWORD" -v ingest_pw="$IOC_DB__INGEST_PASSWORD" \
  -v grafana_pw="$IOC_DB__GRAFANA_PASSWORD" -v dbname="$IOC_DB__NAME" <<'SQL'
CREATE ROLE ioc_owner LOGIN PASSWORD :'owner_pw';
CREATE ROLE ioc_ingest LOGIN PASSWORD :'ingest_pw';
CREATE ROLE ioc_grafana LOGIN PASSWORD :'grafana_pw';
CREATE DATABASE :"dbname" OWNER ioc_owner;
\connect :"dbname"
CREATE EXTENSION IF NOT EXISTS timescaledb;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
GRANT CONNECT ON DATABASE :"dbname" TO ioc_ingest, ioc_grafana;
SQL
