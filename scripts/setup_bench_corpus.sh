#!/usr/bin/env bash
# Fetches the real-text corpus of bench/bench_retrieval_real.py (issue 18): Debian's HTML
# documentation of Python 3.11, PostgreSQL 15, Django 3.2, SQLAlchemy 1.4, Git 2.39, Node.js 18
# and CMake 3.25. Nothing is installed: each package is downloaded and unpacked into
# .data/bench-corpus/ (installing nodejs-doc would remove a NodeSource nodejs, and with it the npm
# that tests/test_node_sdk.py needs). Pages already under /usr/share/doc are used where they are.
# Idempotent and quick when already done.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CORPUS="$ROOT/.data/bench-corpus"
log() { echo "setup_bench_corpus: $*" >&2; }
# package -> the folder of its pages
declare -A PAGES=(
  [python3.11-doc]=usr/share/doc/python3.11/html
  [postgresql-doc-15]=usr/share/doc/postgresql-doc-15/html
  [python-django-doc]=usr/share/doc/python-django-doc/html
  [python-sqlalchemy-doc]=usr/share/doc/python-sqlalchemy-doc/html
  [git-doc]=usr/share/doc/git-doc
  [nodejs-doc]=usr/share/doc/nodejs/api
  [cmake-doc]=usr/share/doc/cmake-data/html
)
missing=()
for pkg in "${!PAGES[@]}"; do
  dir="${PAGES[$pkg]}"
  [[ -d "/$dir" || -d "$CORPUS/$dir" ]] || missing+=("$pkg")
done
((${#missing[@]})) || exit 0
log "downloading and unpacking ${missing[*]} into $CORPUS"
mkdir -p "$CORPUS/debs"
cd "$CORPUS/debs"
fetch() { apt-get download "${missing[@]}" >/dev/null 2>&1; }
if ! { fetch || { apt-get update -q >/dev/null 2>&1 && fetch; }; }; then
  log "WARNING: could not download ${missing[*]} (no apt?); bench/bench_retrieval_real.py needs them."
  exit 0
fi
for deb in *.deb; do dpkg-deb -x "$deb" "$CORPUS"; done
