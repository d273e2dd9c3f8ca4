#!/usr/bin/env bash
# Installs the Debian packages the tests drive as outside clients, when they are missing:
#   kcat      librdkafka's command-line producer and consumer (the codec tests send with it)
#   chromium  a real browser, headless, for the one-tap acknowledgement link (driven by Playwright)
# Called by `make install-test`; safe to run by hand. Needs root (or sudo) because it uses apt-get.
set -euo pipefail

declare -A command_of=([kcat]=kcat [chromium]=chromium)
missing=()
for package in kcat chromium; do
  command -v "${command_of[$package]}" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "kcat and chromium are installed"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: ${missing[*]} missing and this user cannot run apt-get; as root run:" >&2
    echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
