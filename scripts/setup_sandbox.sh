#!/usr/bin/env bash
# Installs what the local code-interpreter sandbox needs; idempotent and quick when already done.
#   1. bubblewrap (apt) when `bwrap` is missing;
#   2. the sandbox's Python runtime: a venv built from the *system* /usr/bin/python3 in a
#      world-readable path, because the sandbox runs as uid 65534 and cannot read /root (pyenv)
#      or the project's venv.
# Env: ASSISTANTS_SANDBOX_RUNTIME (default /opt/assistants-sandbox/venv), PYTHON (default /usr/bin/python3).
set -euo pipefail

RUNTIME="${ASSISTANTS_SANDBOX_RUNTIME:-/opt/assistants-sandbox/venv}"
PYTHON="${PYTHON:-/usr/bin/python3}"
# "Pinned-ish": major versions fixed so a rebuild months later behaves the same.
PACKAGES=(
  "ipykernel>=6.29,<8"
  "numpy>=2.0,<3"
  "pandas>=2.2,<3"
  "matplotlib>=3.9,<4"
  "scipy>=1.13,<2"
  "pillow>=10,<13"
  "openpyxl>=3.1,<4"
  "seaborn>=0.13,<0.14"
  "sympy>=1.13,<2"
  "scikit-learn>=1.5,<2"
  "tabulate>=0.9,<1"
)

log() { echo "setup_sandbox: $*" >&2; }

if ! command -v bwrap >/dev/null 2>&1; then
  log "bwrap missing: installing bubblewrap with apt-get"
  if ! { apt-get install -y -q bubblewrap >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q bubblewrap >/dev/null 2>&1; }; }; then
    log "WARNING: could not install bubblewrap (not root? no apt?). The local sandbox will refuse to"
    log "         start (SandboxUnavailable) unless ASSISTANTS_SANDBOX_UNSAFE=true or E2B_API_KEY is set."
  fi
fi

if [ ! -x "$PYTHON" ]; then
  log "WARNING: $PYTHON not found; cannot build the sandbox runtime (install python3 and python3-venv)."
  exit 0
fi

PYVER="$("$PYTHON" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
STAMP_WANT="python=$PYVER packages=${PACKAGES[*]}"
STAMP="$RUNTIME/.assistants-sandbox-stamp"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$STAMP_WANT" ] && [ -x "$RUNTIME/bin/python" ]; then
  log "runtime up to date at $RUNTIME (python $PYVER)"
  exit 0
fi

log "building sandbox runtime at $RUNTIME from $PYTHON ($PYVER)"
mkdir -p "$(dirname "$RUNTIME")"
# Parents are not opened up here (that could expose e.g. /root): a runtime below a private
# folder is refused, so the sandbox never fails later with a puzzling "permission denied".
d="$(dirname "$RUNTIME")"
while [ "$d" != "/" ]; do
  if [ "$(( 0$(stat -c %a "$d") & 01 ))" -eq 0 ]; then
    log "ERROR: $d is not traversable by other users; put the runtime in a world-readable path"
    exit 1
  fi
  d="$(dirname "$d")"
done
"$PYTHON" -m venv --clear "$RUNTIME"
# (grep drops pip's noise about index mirrors that lack a package; real errors still show)
"$RUNTIME/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check "${PACKAGES[@]}" \
  2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
# Build matplotlib's font cache once, into the runtime, so each kernel start does not.
MPLCONFIGDIR="$RUNTIME/mplconfig" MPLBACKEND=Agg "$RUNTIME/bin/python" -c "import matplotlib.font_manager"
# World-readable (not writable): the sandbox uid must read and execute all of it.
chmod -R a+rX,go-w "$RUNTIME"
echo "$STAMP_WANT" >"$STAMP"
log "done"
