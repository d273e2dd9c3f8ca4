#!/usr/bin/env bash
# Installs Debian's PostgreSQL 15 server and contrib modules when they are missing.
# Called by `ioc dev up`; safe to run by hand. Needs root (or sudo) because it uses apt-get.
set -euo pipefail

if [ -x /usr/lib/postgresql/15/bin/initdb ] && [ -d /usr/share/postgresql/15/extension ] \
   && [ -f /usr/share/postgresql/15/extension/pg_stat_statements.control ]; then
  echo "postgresql-15 and postgresql-contrib are installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: postgresql-15 is missing and this user cannot run apt-get; as root run:" >&2
    echo "  apt-get update && apt-get install -y postgresql-15 postgresql-contrib" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends postgresql-15 postgresql-contrib
# Debian's package creates and starts a default cluster on port 5432; ours lives under .local/,
# so stop the packaged one to keep the machine quiet (it is not used by this project).
if command -v pg_ctlcluster >/dev/null 2>&1; then
  $SUDO pg_ctlcluster 15 main stop 2>/dev/null || true
fi
