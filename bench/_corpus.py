"""The real-text corpus of bench_retrieval_real.py (issue 18): Debian's HTML documentation of
Python 3.11, PostgreSQL 15, Django 3.2, SQLAlchemy 1.4, Git 2.39, Node.js 18 and CMake 3.25
(scripts/setup_bench_corpus.sh installs it), parsed by the ingestion path's own parser, chunked by the Embedder's own chunker and embedded in batches by
the Embedder, with embeddings cached on disk so reruns skip the model.

Not a benchmark itself (the leading underscore keeps `bench/run_all.py` from running it).

    python bench/_corpus.py --chunks 100000   # embed (or finish embedding) that many chunks

Cache: `.data/bench-cache/` (gitignored): `docs.json` (parsed text per document) and
`emb-<model>-<dtype>-<tokens>-<overlap>/shard-*.npz`, each shard holding the 16-byte sha256 keys
of its chunk texts and their vectors. A key covers model + chunking + text, and the folder the
weights' dtype, so a changed chunker, model or dtype never reads stale vectors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from activities.embeddings import Chunk, Embedder, resolve_dtype  # noqa: E402
from activities.parsing import InvalidFile, parse  # noqa: E402

CACHE = ROOT / ".data" / "bench-cache"
UNPACKED = ROOT / ".data" / "bench-corpus"  # where scripts/setup_bench_corpus.sh unpacks the packages
SOURCES = (
    Path("/usr/share/doc/python3.11/html"),
    Path("/usr/share/doc/postgresql-doc-15/html"),
    Path("/usr/share/doc/python-django-doc/html"),
    Path("/usr/share/doc/python-sqlalchemy-doc/html"),
    Path("/usr/share/doc/git-doc"),
    Path("/usr/share/doc/nodejs/api"),
    Path("/usr/share/doc/cmake-data/html"),
)
# Assets, highlighted source listings, and Node's all.html (every other page of its manual again).
SKIP = {"_static", "_modules", "_sources", "_images", "all.html"}
# Small static chunks (OpenAI's minimum is 100 tokens): the corpus then passes 100k chunks.
MAX_TOKENS, OVERLAP = 128, 32
SHARD = 4096
HELD_OUT_EVERY = 10  # every 10th document is held out: queries come from it, it is never indexed


@dataclass
class Doc:
    name: str
    text: str


@dataclass
class CorpusChunk:
    doc: str
    chunk: Chunk


def located(src: Path) -> Path:
    """A source's pages: installed under /usr/share/doc, else unpacked by the setup script."""
    return src if src.is_dir() else UNPACKED / src.relative_to("/")


def documents() -> list[Doc]:
    """Every HTML page of the sources as text (parsed once, then read from the cache)."""
    path = CACHE / "docs.json"
    if path.exists():
        return [Doc(**d) for d in json.loads(path.read_text())]
    if not all(located(src).is_dir() for src in SOURCES):  # fetches Debian's packages (apt)
        subprocess.run(["bash", str(ROOT / "scripts/setup_bench_corpus.sh")], check=False)
    # Named by their /usr/share/doc path wherever they lie, and read in that order.
    files = sorted(
        (str(src / p.relative_to(located(src))), p)
        for src in SOURCES
        for p in located(src).rglob("*.html")
        if not SKIP & set(p.parts)
    )
    if not files:
        raise SystemExit("no corpus: run scripts/setup_bench_corpus.sh")
    docs = []
    for name, p in files:
        try:
            docs.append(Doc(name, parse(p.name, p.read_bytes())))
        except InvalidFile:
            continue
    CACHE.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([d.__dict__ for d in docs]))
    return docs


def split(docs: list[Doc]) -> tuple[list[Doc], list[Doc]]:
    """(indexed, held out), both in a fixed shuffled order: any prefix of the indexed documents
    (a 10k-chunk store) mixes both manuals."""
    order = np.random.default_rng(0).permutation(len(docs))
    mixed = [docs[i] for i in order]
    return (
        [d for i, d in enumerate(mixed) if i % HELD_OUT_EVERY],
        [d for i, d in enumerate(mixed) if not i % HELD_OUT_EVERY],
    )


def chunks(embedder: Embedder, docs: list[Doc], limit: int) -> list[CorpusChunk]:
    """The first `limit` chunks of the documents, in order, as ingestion cuts them."""
    out: list[CorpusChunk] = []
    for d in docs:
        out += [CorpusChunk(d.name, c) for c in embedder.chunk(d.text, MAX_TOKENS, OVERLAP)]
        if len(out) >= limit:
            break
    return out[:limit]


def key(model: str, text: str) -> bytes:
    return hashlib.sha256(f"{model}\0{MAX_TOKENS}\0{OVERLAP}\0{text}".encode()).digest()[:16]


class EmbeddingCache:
    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder
        self.model = Path(embedder.model_path).name
        embedder.dtype = resolve_dtype(embedder.dtype)
        self.dir = CACHE / f"emb-{self.model}-{embedder.dtype}-{MAX_TOKENS}-{OVERLAP}"
        self.vectors: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.dir.glob("shard-*.npz")):
            data = np.load(shard)
            self.vectors.update(zip((bytes(k) for k in data["keys"]), data["vecs"], strict=True))

    def has(self, text: str) -> bool:
        return key(self.model, text) in self.vectors

    def embed(self, texts: list[str], log: bool = False) -> tuple[np.ndarray, float, int]:
        """Vectors of `texts`; embeds only the missing ones, a shard at a time (a killed run keeps
        its finished shards). Returns (vectors, seconds spent embedding, texts embedded)."""
        keys = [key(self.model, t) for t in texts]
        todo = list(dict.fromkeys(k for k in keys if k not in self.vectors))
        by_key = dict(zip(keys, texts, strict=True))
        spent = 0.0
        self.dir.mkdir(parents=True, exist_ok=True)
        for i in range(0, len(todo), SHARD):
            part = todo[i : i + SHARD]
            t = time.perf_counter()
            vecs = self.embedder.embed([by_key[k] for k in part])
            spent += time.perf_counter() - t
            np.savez(
                self.dir / f"shard-{time.time_ns()}-{os.getpid()}.npz",  # unique across processes
                keys=np.array([np.frombuffer(k, dtype=np.uint8) for k in part]),
                vecs=vecs,
            )
            self.vectors.update(zip(part, vecs, strict=True))
            if log:
                done = i + len(part)
                print(f"embedded {done}/{len(todo)} ({done / spent:.1f} chunks/s)", flush=True)
        return np.stack([self.vectors[k] for k in keys]) if keys else np.zeros((0, 384)), spent, len(todo)


_SENTENCE = re.compile(r"[A-Z][^.?!\n]{40,200}[.?!](?=\s)")


def queries(held_out: list[Doc], n: int, seed: int = 0) -> list[str]:
    """Held-out sentences and headings (short lines without a full stop), half each."""
    sentences, headings = [], []
    for d in held_out:
        sentences += _SENTENCE.findall(d.text)
        headings += [
            ln.strip("¶ ")
            for ln in d.text.splitlines()
            if 3 <= len(ln.split()) <= 10 and not ln.rstrip().endswith((".", ",", ":", ";", ")"))
        ]
    rng = np.random.default_rng(seed)
    pick = lambda pool, k: [pool[i] for i in rng.choice(len(pool), size=min(k, len(pool)), replace=False)]  # noqa: E731
    return pick(sentences, n - n // 2) + pick(headings, n // 2)


def iter_sizes(arg: str) -> Iterator[int]:
    yield from sorted(int(s) for s in arg.split(","))


def main() -> None:
    ap = argparse.ArgumentParser(description="Embed (and cache) the first N chunks of the corpus.")
    ap.add_argument("--chunks", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    args = ap.parse_args()
    embedder = Embedder(batch_size=args.batch, dtype=args.dtype)
    indexed, held = split(documents())
    cs = chunks(embedder, indexed, args.chunks)
    print(f"{len(indexed)} documents indexed, {len(held)} held out; {len(cs)} chunks", flush=True)
    _, spent, n = EmbeddingCache(embedder).embed([c.chunk.text for c in cs], log=True)
    if n:
        print(f"embedded {n} new chunks in {spent:.0f}s: {n / spent:.1f} chunks/s", flush=True)


if __name__ == "__main__":
    main()
