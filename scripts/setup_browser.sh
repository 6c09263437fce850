#!/usr/bin/env bash
# Installs the browser the playground tests drive: Debian's chromium (apt) when /usr/bin/chromium
# is missing; idempotent and quick when already there. The `playwright` Python package comes with
# the dev extras; `playwright install` is never run: it downloads its own browsers, and the tests
# point playwright at /usr/bin/chromium instead.
set -euo pipefail

CHROMIUM=/usr/bin/chromium
log() { echo "setup_browser: $*" >&2; }

if [[ -x "$CHROMIUM" ]]; then
  exit 0
fi
if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  log "$CHROMIUM is missing; install Debian's chromium package (the playground browser tests skip without it)"
  exit 0
fi
log "$CHROMIUM missing: installing chromium with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 || {
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends chromium >/dev/null
}
"$CHROMIUM" --version >&2
