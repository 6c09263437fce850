"""Issue 17, point 4: a real Prometheus (Debian's `prometheus` package, scripts/setup_prometheus.sh)
scrapes a stack of its own with the committed scrape config while the official `openai` SDK makes
a few runs (one streamed, one with the code interpreter), ingests a good and a broken file and
makes requests that fail; then every query of every panel of the committed Grafana dashboard
returns data, and Prometheus has loaded and evaluated every committed alert rule.

The committed infra/prometheus/prometheus.yml finds its targets through Docker's DNS (Compose
service names, ports 9100/9101); here each `name:port` becomes the stack's own localhost port of
that role and kind (stack.json `metrics`), under the same job names and labels, so the panels'
queries run unchanged. Grafana's `$__rate_interval` becomes RATE_INTERVAL: Grafana makes it at
least four scrape intervals; this test scrapes every second and lasts a minute or two, and
queries right after its last requests, so one minute holds what the workload did."""

from __future__ import annotations

import copy
import json
import math
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from tests.requires import missing
from tests.stackutil import StackHandle, own_stack
from tests.tool_requests import forced_code_run

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = ROOT / "infra" / "prometheus"
DASHBOARD = ROOT / "infra" / "grafana" / "dashboards" / "assistants.json"
RATE_INTERVAL = "1m"
# The committed config's ports (the Compose env's ASSISTANTS_METRICS_PORT and
# ASSISTANTS_TEMPORAL_METRICS_PORT; tests/test_infra.py checks they agree) -> stack.json kinds.
PORT_KINDS = {9100: "metrics", 9101: "temporal_metrics"}
MODEL = "smollm2-135m-instruct"

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
if not (Path(PROMETHEUS).exists() and Path(PROMTOOL).exists()):
    missing("prometheus/promtool not installed: run scripts/setup_prometheus.sh")


def panel_queries() -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, rows' nested panels included."""
    out: list[tuple[str, str]] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for p in panels:
            out.extend((p["title"], t["expr"]) for t in p.get("targets", []))
            walk(p.get("panels", []))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return out


def local_config(committed: dict[str, Any], stack_metrics: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The committed config with each DNS-discovered `name:port` replaced by the stack's address
    of that role and kind. `__meta_dns_name` is set as DNS discovery would, for the relabelling."""
    cfg = copy.deepcopy(committed)
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(PROMETHEUS_DIR / f) for f in committed["rule_files"]]
    for job in cfg["scrape_configs"]:
        assert set(job) <= {"job_name", "dns_sd_configs", "relabel_configs"}, job
        groups = []
        for sd in job.pop("dns_sd_configs"):
            for name in sd["names"]:
                url = urllib.parse.urlsplit(stack_metrics[name][PORT_KINDS[sd["port"]]])
                assert url.path == "/metrics"
                groups.append({"targets": [url.netloc], "labels": {"__meta_dns_name": name}})
        job["static_configs"] = groups
    return cfg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(f"{self.url}/api/v1/{path}{query}", timeout=30) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return list(self.api("query", query=expr.replace("$__rate_interval", RATE_INTERVAL))["result"])


@pytest.fixture(scope="module")
def stack() -> Iterator[StackHandle]:
    with own_stack("assistants-dash-") as handle:
        yield handle


@pytest.fixture(scope="module")
def prometheus(stack: StackHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    tmp = tmp_path_factory.mktemp("prometheus")
    committed = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump(local_config(committed, stack.stack_info()["metrics"])))
    check = subprocess.run([PROMTOOL, "check", "config", str(config)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    port = _free_port()
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    prom = Prometheus(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "prometheus.log").read_text()[-3000:]
            try:
                targets = prom.api("targets")["activeTargets"]
                if len(targets) == 6 and all(t["health"] == "up" for t in targets):
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"targets not all up: {targets}"
            time.sleep(0.5)
        yield prom
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def test_alert_rules_pass_promtool() -> None:
    out = subprocess.run(
        [PROMTOOL, "check", "rules", str(PROMETHEUS_DIR / "alerts.yml")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout + out.stderr


def _workload(stack: StackHandle) -> None:
    """Runs, a stream, the sandbox, ingestion (one file fails) and failed requests, the runs that
    feed histograms last so they fall inside the rate window."""
    client = openai.OpenAI(base_url=stack.base_url, api_key=stack.create_key(), max_retries=0, timeout=120)
    run = forced_code_run(client, MODEL, max_completion_tokens=60)
    assert run.status in ("completed", "incomplete"), run.last_error
    store = client.vector_stores.create(name="dashboard")
    good = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("notes.txt", b"The lighthouse keeper counts ships."),
        poll_interval_ms=300,
    )
    assert good.status == "completed", good.last_error
    broken = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id,
        file=("broken.pdf", b"%PDF-1.7\n\x00\xff garbage " * 50),
        poll_interval_ms=300,
    )
    assert broken.status == "failed"  # its parse activity raised: an activity failure
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve("thread_does_not_exist")
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.create(model="no-such-model")
    helper = client.beta.assistants.create(model=MODEL, instructions="Be brief.", temperature=0)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Say hi."}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=helper.id, max_completion_tokens=8, poll_interval_ms=200
    )
    assert run.status in ("completed", "incomplete"), run.last_error
    client.beta.threads.messages.create(thread.id, role="user", content="Name a colour.")
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=helper.id, max_completion_tokens=8
    ) as s:
        s.until_done()


def test_every_dashboard_panel_has_data(stack: StackHandle, prometheus: Prometheus) -> None:
    _workload(stack)
    time.sleep(5)  # a few scrapes after the last request
    queries = panel_queries()
    assert len(queries) >= 25
    empty, blank = [], []
    for title, expr in queries:
        result = prometheus.query(expr)
        values = [float(r["value"][1]) for r in result]
        if not result:
            empty.append((title, expr))
        elif all(math.isnan(v) for v in values):
            blank.append((title, expr))  # e.g. a quantile of a histogram nothing landed in lately
    assert not empty, f"panel queries with no series: {empty}"
    assert not blank, f"panel queries with only NaN: {blank}"


def test_alert_rules_loaded_and_evaluated(prometheus: Prometheus) -> None:
    committed = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    want = {r["alert"] for g in committed["groups"] for r in g["rules"]}
    deadline = time.monotonic() + 30
    while True:
        rules = [r for g in prometheus.api("rules")["groups"] for r in g["rules"]]
        evaluated = [r for r in rules if not r["lastEvaluation"].startswith("0001-")]
        if len(evaluated) == len(rules) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert {r["name"] for r in rules} == want
    assert len(evaluated) == len(rules)
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]
