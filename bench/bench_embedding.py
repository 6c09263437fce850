"""Embedding throughput by weights' dtype (issue 18): the Embedder (batched, model loaded once) on
the same chunks of the real-text corpus (bench/_corpus.py) in float32 and in bfloat16, side by
side, with how close the bfloat16 vectors are to the float32 ones (cosine).

    .venv/bin/python bench/bench_embedding.py [--chunks 512]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import append_results, machine
from _corpus import MAX_TOKENS, chunks, documents, split

from activities.embeddings import Embedder


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=512)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    indexed, _ = split(documents())
    out = [f"machine: {machine()}"]
    vecs, rates = {}, {}
    for dtype in ("float32", "bfloat16"):
        e = Embedder(batch_size=args.batch, dtype=dtype)
        texts = [c.chunk.text for c in chunks(e, indexed, args.chunks)]
        e.embed(texts[: args.batch])  # load the model, warm up
        t = time.perf_counter()
        vecs[dtype] = e.embed(texts)
        rates[dtype] = len(texts) / (time.perf_counter() - t)
    cos = (vecs["float32"] * vecs["bfloat16"]).sum(axis=1)
    out.append(
        f"{len(cos)} chunks of <= {MAX_TOKENS} tokens, batch {args.batch}: float32 {rates['float32']:.1f} chunks/s,"
        f" bfloat16 {rates['bfloat16']:.1f} chunks/s ({rates['bfloat16'] / rates['float32']:.2f}x);"
        f" cosine of bfloat16 to float32 vectors: mean {np.mean(cos):.5f}, min {np.min(cos):.4f}"
    )
    for line in out:
        print(line, flush=True)
    append_results("bench_embedding.py", out)


if __name__ == "__main__":
    main()
