#!/usr/bin/env bash
# Installs the real-text corpus of bench/bench_retrieval_real.py (issue 18): Debian's HTML
# documentation of Python 3.11 (python3.11-doc) and PostgreSQL 15 (postgresql-doc-15), both
# under /usr/share/doc. Idempotent and quick when already done.
set -euo pipefail

log() { echo "setup_bench_corpus: $*" >&2; }
PACKAGES=(python3.11-doc postgresql-doc-15)

if [[ -d /usr/share/doc/python3.11/html/library && -d /usr/share/doc/postgresql-doc-15/html ]]; then
  exit 0
fi
log "installing ${PACKAGES[*]} with apt-get"
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1; }
if ! { install || { apt-get update -q >/dev/null 2>&1 && install; }; }; then
  log "WARNING: could not install ${PACKAGES[*]} (not root? no apt?); bench/bench_retrieval_real.py"
  log "         needs them."
fi
