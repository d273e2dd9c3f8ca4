#!/usr/bin/env bash
# `make test`: lint, then every test tier against the real local runtime.
# Starts Kafka and PostgreSQL if they are down, and stops again only what it started.
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=.venv/bin

started=0
if ! $BIN/ioc dev status --quiet; then
  echo "== starting the local runtime (ioc dev up)"
  $BIN/ioc dev up || exit 1
  started=1
fi
cleanup() {
  if [ "$started" = 1 ]; then
    echo "== stopping the runtime this run started (ioc dev down)"
    $BIN/ioc dev down
  fi
}
trap cleanup EXIT

echo "== lint (ruff, import contracts)"
make --no-print-directory lint || exit 1

echo "== pytest (Kafka in PLAINTEXT)"
$BIN/python -m pytest -m "not secure" "$@"
plain=$?

# Secure mode (issue 19): the same broker ports, restarted with SASL/SCRAM over TLS, its own data
# dir; the ACL, interop and e2e accounting tests under tests/secure/. Then back to how it was.
echo "== pytest (Kafka in secure mode: ioc dev down && ioc dev up --secure)"
$BIN/ioc dev down && $BIN/ioc dev up --secure || exit 1
$BIN/python -m pytest -m secure tests/secure
secure=$?
$BIN/ioc dev down
if [ "$started" = 0 ]; then
  $BIN/ioc dev up || exit 1
fi
started=0
[ "$plain" = 0 ] && [ "$secure" = 0 ]
