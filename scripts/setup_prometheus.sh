#!/usr/bin/env bash
# Installs Debian's `prometheus` package (the server and promtool) for tests/test_dashboard.py,
# which runs /usr/bin/prometheus itself on a scrape config of its own; idempotent and quick when
# already done. The package's own service is not started here (containers have no init; on a host
# with systemd, `systemctl disable --now prometheus` if you do not want it).
set -euo pipefail

log() { echo "setup_prometheus: $*" >&2; }

if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
log "prometheus missing: installing Debian's prometheus package with apt-get"
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1; }
if ! { install || { apt-get update -q >/dev/null 2>&1 && install; }; }; then
  log "WARNING: could not install prometheus (not root? no apt?). tests/test_dashboard.py will skip"
  log "         here and fail under CI."
fi
