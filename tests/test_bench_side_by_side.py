"""bench/side_by_side.sh's code path, without a model or a server: `bench_inference.py --with-vllm`
loads bench_vllm.py's raw-vLLM column (at BENCH_VLLM_URL, the server side_by_side starts) and
prints its cells in one table beside an API column's. Every column returns the one `Cell` of
bench/_common.py, so the table finds what it reads on each (a copy without `cpu` crashed it with
`AttributeError: 'Cell' object has no attribute 'cpu'`)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
NEW_TOKENS = 4


async def test_vllm_column_prints_in_the_side_by_side_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCH))  # the scripts import `_common` as their neighbour
    monkeypatch.setenv("BENCH_VLLM_URL", "http://127.0.0.1:9/v1")  # never contacted
    bench = importlib.import_module("bench_inference")
    [vllm] = bench.extra_columns([[1, 2, 3]], NEW_TOKENS)

    async def one(prompt: list[int], n: int) -> tuple[float, float, int]:
        return 0.01, 0.02, n  # ttft, latency, completion tokens of one streamed request

    monkeypatch.setattr(vllm, "_one", one)

    class ApiColumn:
        name = "API smollm2-vllm (SDK)"

        async def measure(self, level: int) -> object:
            return bench.Cell(50.0, [0.1] * level, [1.0] * level, cpu={"worker-inference": 0.5}, wall=1.0)

    lines: list[str] = []
    await bench.measure_all([vllm, ApiColumn()], [1, 2], lines.append)
    cell = await vllm.measure(2)
    assert type(cell) is bench.Cell and cell.wall > 0 and cell.short == 0
    assert set(cell.cpu) == {"SDK client (bench process)"}
    assert any(line.startswith("vLLM raw (SDK),  2 concurrent: ") for line in lines), lines
    assert any(line.startswith("  CPU seconds in that pass") and "SDK client" in line for line in lines)
    assert any(line.startswith("| vLLM raw (SDK) | ") for line in lines), lines
    assert any(line.startswith("| API smollm2-vllm (SDK) | ") for line in lines), lines
