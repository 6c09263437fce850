#!/usr/bin/env bash
# Side-by-side inference bench (issue 13): one vLLM serves the raw column and the API-on-vLLM column.
# Usage: bench/side_by_side.sh [bench_inference.py options]. Needs .vllm-venv (scripts/setup_vllm.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PORT=18777
LOG="$(mktemp -d)/vllm.log"
.venv/bin/python - <<PY &
from pathlib import Path
from tests.vllm_server import VllmServer
import time, signal
s = VllmServer(Path(".data/models/smollm2-135m-instruct").resolve(), "smollm2-135m-instruct", $PORT, Path("$LOG"))
s.start(); print("vllm ready in", s.wait_ready(900), flush=True)
signal.sigwait({signal.SIGTERM})
s.stop()
PY
VPID=$!
until curl -sf localhost:$PORT/v1/models >/dev/null; do sleep 5; done
PROV='{"smollm2-vllm": {"provider": "openai", "base_url": "http://127.0.0.1:'$PORT'/v1", "model": "smollm2-135m-instruct", "extra_body": {"ignore_eos": true}, "capabilities": {"context_length": 4096}}}'
BENCH_VLLM_URL=http://127.0.0.1:$PORT/v1 PYTHONPATH=. .venv/bin/python bench/bench_inference.py --with-vllm \
  --api-models smollm2-135m-instruct,smollm2-vllm --stack-env "ASSISTANTS_MODEL_PROVIDERS=$PROV" "$@"
kill -TERM $VPID; wait $VPID || true
