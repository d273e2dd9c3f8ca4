#!/usr/bin/env bash
# Installs kcat (librdkafka's command-line producer and consumer, Debian's `kcat` package) when it
# is missing. The codec tests send with it as an integrator would. Called by `make install-test`;
# safe to run by hand. Needs root (or sudo) because it uses apt-get.
set -euo pipefail

if command -v kcat >/dev/null 2>&1; then
  echo "kcat is installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: kcat is missing and this user cannot run apt-get; as root run:" >&2
    echo "  apt-get update && apt-get install -y kcat" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends kcat
