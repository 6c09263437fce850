#!/usr/bin/env bash
# Installs the real-text corpus of bench/bench_retrieval_real.py (issue 18): Debian's HTML
# documentation of Python 3.11, PostgreSQL 15, Django 3.2, SQLAlchemy 1.4, Git 2.39, Node.js 18
# and CMake 3.25, all under
# /usr/share/doc. Idempotent and quick when already done.
set -euo pipefail

log() { echo "setup_bench_corpus: $*" >&2; }
PACKAGES=(python3.11-doc postgresql-doc-15 python-django-doc python-sqlalchemy-doc git-doc nodejs-doc cmake-doc)

if [[ -d /usr/share/doc/python3.11/html/library && -d /usr/share/doc/postgresql-doc-15/html &&
      -d /usr/share/doc/python-django-doc/html && -d /usr/share/doc/python-sqlalchemy-doc/html &&
      -f /usr/share/doc/git-doc/git.html && -d /usr/share/doc/nodejs/api &&
      -d /usr/share/doc/cmake-data/html ]]; then
  exit 0
fi
log "installing ${PACKAGES[*]} with apt-get"
install() { DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >/dev/null 2>&1; }
if ! { install || { apt-get update -q >/dev/null 2>&1 && install; }; }; then
  log "WARNING: could not install ${PACKAGES[*]} (not root? no apt?); bench/bench_retrieval_real.py"
  log "         needs them."
fi
