"""infra/ stays consistent with the settings: the Compose file and the Kubernetes manifests set
only variables that Settings reads, set the ones production needs, and wire the fleets right
(inference on the GPU queue, probes on /health at the API port), and the vLLM inference tier is
wired to the remote model provider. Static: no Docker, no network."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import AliasChoices

from assistants.model_providers import RemoteModel, parse_providers
from assistants.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
COMPOSE = INFRA / "compose" / "docker-compose.yml"
K8S = INFRA / "k8s" / "base"
# Read by libraries, not by Settings: boto3's credential chain (settings.py says so).
LIBRARY_ENV = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
REQUIRED = {"DATABASE_URL", "TEMPORAL_ADDRESS", "ASSISTANTS_ENV"}


def settings_env_names() -> set[str]:
    """Every environment variable Settings reads: prefix + FIELD, or the field's aliases."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(c).upper() for c in alias.choices if isinstance(c, str))
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:
            names.add((prefix + field_name).upper())
    return names


ALLOWED = settings_env_names()


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as a container with this environment would build them."""
    import os

    for name in list(os.environ):
        if name in ALLOWED:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)  # type: ignore[call-arg]


def is_app(command: Any) -> bool:
    return isinstance(command, list) and bool(command) and command[0] == "assistants"


def queue_of(command: list[str]) -> str | None:
    return command[command.index("--queue") + 1] if "--queue" in command else None


def provider_key_envs(env: dict[str, str]) -> set[str]:
    """The env vars ASSISTANTS_MODEL_PROVIDERS names for its keys (read by the providers)."""
    remote = parse_providers(env.get("ASSISTANTS_MODEL_PROVIDERS", ""))
    return {m.api_key_env for m in remote.values() if m.api_key_env}


def check_app_env(where: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    unknown = set(env) - ALLOWED - LIBRARY_ENV - provider_key_envs(env)
    assert not unknown, f"{where} sets variables Settings does not read: {sorted(unknown)}"
    missing = REQUIRED - set(env)
    assert not missing, f"{where} does not set {sorted(missing)}"
    assert env["ASSISTANTS_ENV"] == "production", where
    return settings_from(env, monkeypatch)  # values parse, and the production validator passes


# --- Compose ------------------------------------------------------------------------------------
def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def app_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if is_app(s.get("command"))}


def test_compose_app_services_use_only_settings_and_set_production_ones(compose, monkeypatch) -> None:
    apps = app_services(compose)
    assert {"api", "worker-runs", "worker-inference"} <= set(apps)
    for name, service in apps.items():
        check_app_env(f"compose service {name}", compose_env(service), monkeypatch)


def test_compose_fleets(compose, monkeypatch) -> None:
    apps = app_services(compose)
    queues = {queue_of(s["command"]) for s in apps.values() if s["command"][1] == "worker"}
    assert queues == {"runs", "inference"}
    for name, service in apps.items():
        if queue_of(service["command"]) != "inference":
            continue
        settings = settings_from(compose_env(service), monkeypatch)
        assert settings.device.startswith("cuda"), name
        devices = service["deploy"]["resources"]["reservations"]["devices"]
        assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), name
    api = apps["api"]
    assert api["command"][:2] == ["assistants", "api"]
    assert api["deploy"]["replicas"] >= 2
    port = settings_from(compose_env(api), monkeypatch).port
    assert settings_from(compose_env(api), monkeypatch).host == "0.0.0.0"
    probe = " ".join(api["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/health" in probe


def test_compose_runs_a_real_temporal_server_and_pgvector(compose) -> None:
    services = compose["services"]
    images = {name: str(s.get("image", "")) for name, s in services.items()}
    assert images["postgres"].startswith("pgvector/pgvector:")
    assert images["temporal"].startswith("temporalio/")
    assert "start-dev" not in " ".join(map(str, services["temporal"].get("command") or []))
    # The search attributes runs are started with get registered.
    script = " ".join(services["temporal-init"]["command"])
    for name in ("AssistantId", "ThreadId", "ProjectId"):
        assert name in script


def vllm_args(args: list[str]) -> dict[str, str]:
    """`--flag=value` / `--flag value` / `--flag` -> {flag: value or ""}."""
    out: dict[str, str] = {}
    items = [str(a) for a in args]
    for i, item in enumerate(items):
        if item.startswith("--"):
            flag, eq, value = item[2:].partition("=")
            following = items[i + 1] if i + 1 < len(items) else "--"
            out[flag] = value if eq else ("" if following.startswith("--") else following)
    return out


def check_vllm_serves(remote: RemoteModel, args: dict[str, str], host: str, port: int) -> None:
    """The provider's base_url reaches this server, under the name it serves, with tool calls."""
    assert remote.base_url == f"http://{host}:{port}/v1", remote
    assert int(args["port"]) == port and args["host"] == "0.0.0.0"
    assert args.get("served-model-name", args.get("model")) == remote.model
    assert remote.api_key_env == "VLLM_API_KEY"
    assert remote.capabilities.context_length <= int(args["max-model-len"])
    if remote.capabilities.tools:  # `auto` needs the parser; named/required use guided decoding
        assert "enable-auto-tool-choice" in args and args.get("tool-call-parser")


def test_compose_vllm_tier(compose, monkeypatch) -> None:
    services = compose["services"]
    vllm = services["vllm"]
    assert str(vllm["image"]).startswith("vllm/vllm-openai:")
    devices = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices)
    assert "/health" in " ".join(vllm["healthcheck"]["test"])
    assert "ports" not in vllm  # only the compose network reaches it
    # The model volume: a named volume, so the weights outlive the container.
    assert any(str(v).split(":")[0] in compose.get("volumes", {}) for v in vllm["volumes"])
    assert "VLLM_API_KEY" in compose_env(vllm)
    args = vllm_args(vllm["command"])
    apps = app_services(compose)
    for name, service in apps.items():
        remote = settings_from(compose_env(service), monkeypatch).remote_models()
        assert list(remote) == ["vllm-default"], name  # the API lists it, the workers call it
        check_vllm_serves(remote["vllm-default"], args, "vllm", 8000)
    # The inference workers hold the key; the in-process worker stays as it was (GPU, cuda).
    for name, service in apps.items():
        if queue_of(service["command"]) == "inference":
            assert compose_env(service)["VLLM_API_KEY"] == compose_env(vllm)["VLLM_API_KEY"], name


# --- Kubernetes ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def manifests() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, "kustomization.yaml must list every manifest in the base"
    docs: list[dict[str, Any]] = []
    for name in sorted(listed):
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    return docs


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def container_env(container: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    maps, secrets = of_kind(docs, "ConfigMap"), of_kind(docs, "Secret")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(maps[source["configMapRef"]["name"]]["data"])
        if "secretRef" in source:
            secret = secrets[source["secretRef"]["name"]]
            env.update(secret.get("stringData") or {})
            env.update({k: "x" for k in secret.get("data") or {}})
    for item in container.get("env", []):
        env[item["name"]] = str(item.get("value", ""))
    return {str(k): str(v) for k, v in env.items()}


def app_containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    out = []
    for name, deployment in of_kind(docs, "Deployment").items():
        for c in deployment["spec"]["template"]["spec"]["containers"]:
            if is_app(c.get("command")):
                out.append((name, deployment, c))
    return out


def test_k8s_app_containers_use_only_settings_and_set_production_ones(manifests, monkeypatch) -> None:
    containers = app_containers(manifests)
    assert len(containers) == 3
    for name, _, container in containers:
        check_app_env(f"deployment {name}", container_env(container, manifests), monkeypatch)


def test_k8s_fleets(manifests, monkeypatch) -> None:
    by_role: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for _, deployment, c in app_containers(manifests):
        by_role[queue_of(c["command"]) or c["command"][1]] = (deployment, c)
    assert set(by_role) == {"api", "runs", "inference"}

    deployment, c = by_role["inference"]
    assert settings_from(container_env(c, manifests), monkeypatch).device.startswith("cuda")
    assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    pod = deployment["spec"]["template"]["spec"]
    assert pod.get("nodeSelector") and any(t["key"] == "nvidia.com/gpu" for t in pod.get("tolerations", []))

    deployment, c = by_role["api"]
    assert deployment["spec"]["replicas"] >= 2
    settings = settings_from(container_env(c, manifests), monkeypatch)
    assert settings.host == "0.0.0.0"
    ports = {p.get("name", str(p["containerPort"])): p["containerPort"] for p in c["ports"]}
    assert settings.port in ports.values()

    def port_of(ref: Any) -> int:
        return int(ports[ref]) if isinstance(ref, str) else int(ref)

    ready = c["readinessProbe"]["httpGet"]
    assert ready["path"] == "/health" and port_of(ready["port"]) == settings.port
    # Liveness must not follow dependencies (/health is 503 when Postgres or a worker is down).
    live = c["livenessProbe"]
    assert live.get("httpGet", {}).get("path") != "/health"
    assert port_of((live.get("tcpSocket") or live.get("httpGet"))["port"]) == settings.port

    service = of_kind(manifests, "Service")["assistants-api"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert all(port_of(p["targetPort"]) == settings.port for p in service["spec"]["ports"])


def test_k8s_vllm_tier(manifests, monkeypatch) -> None:
    deployment = of_kind(manifests, "Deployment")["vllm"]
    pod = deployment["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert str(c["image"]).startswith("vllm/vllm-openai:")
    assert int(c["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert pod.get("nodeSelector") and any(t["key"] == "nvidia.com/gpu" for t in pod.get("tolerations", []))
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    for probe in ("readinessProbe", "startupProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/health" and ports[get["port"]] == 8000, probe
    # The model volume: a claim in the base, mounted where the weights are cached.
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert set(claims.values()) <= set(of_kind(manifests, "PersistentVolumeClaim"))
    assert any(m["name"] in claims for m in c["volumeMounts"])
    key = next(e for e in c["env"] if e["name"] == "VLLM_API_KEY")["valueFrom"]["secretKeyRef"]
    assert "VLLM_API_KEY" in (of_kind(manifests, "Secret")[key["name"]].get("stringData") or {})

    service = of_kind(manifests, "Service")["vllm"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    (port,) = service["spec"]["ports"]
    assert ports[port["targetPort"]] == 8000
    args = vllm_args(c["args"])
    assert int(args["port"]) == 8000
    for name, _, app in app_containers(manifests):
        env = container_env(app, manifests)
        remote = settings_from(env, monkeypatch).remote_models()
        assert list(remote) == ["vllm-default"], name
        check_vllm_serves(remote["vllm-default"], args, "vllm", int(port["port"]))
        assert "VLLM_API_KEY" in env, name  # the workers that call it hold the key


def test_k8s_connects_to_an_existing_cluster(manifests) -> None:
    kinds = {d["kind"] for d in manifests}
    assert "StatefulSet" not in kinds  # no Postgres/Temporal of its own
    assert {"HorizontalPodAutoscaler", "ConfigMap", "Secret", "Service"} <= kinds


# --- every file ---------------------------------------------------------------------------------
def test_every_assistants_variable_mentioned_in_infra_exists() -> None:
    """Comments and docs included: a renamed or misspelt setting anywhere in infra/ fails here."""
    for path in INFRA.rglob("*"):
        if path.is_file():
            for name in set(re.findall(r"\bASSISTANTS_[A-Z0-9_]+\b", path.read_text(errors="replace"))):
                assert name in ALLOWED, (
                    f"{path.relative_to(ROOT)} mentions {name}, which Settings does not read"
                )


def test_dockerfile_pins_torch() -> None:
    text = (INFRA / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"torch==\$\{TORCH_VERSION\}", text) and "ARG TORCH_VERSION=2.13.0" in text


# --- monitoring (Prometheus, Grafana; tests/test_dashboard.py runs them for real) ----------------
PROMETHEUS_DIR = INFRA / "prometheus"
GRAFANA = INFRA / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "assistants.json"
README = ROOT / "README.md"
APP_ROLES = ("api", "worker-runs", "worker-inference")


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Bind mounts of a Compose service: container path -> host path (relative to the file)."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            out[target] = (COMPOSE.parent / source).resolve()
    return out


def test_compose_runs_prometheus_and_grafana_on_the_committed_files(compose) -> None:
    services = compose["services"]
    prom, grafana = services["prometheus"], services["grafana"]
    assert str(prom["image"]).startswith("prom/prometheus:")
    assert str(grafana["image"]).startswith("grafana/grafana:")
    # Prometheus reads the committed config and rules (the config names the rules relative to itself).
    config_arg = next(a for a in prom["command"] if a.startswith("--config.file="))
    config_path = Path(config_arg.split("=", 1)[1])
    assert mounts(prom)[str(config_path.parent)] == PROMETHEUS_DIR
    config = yaml.safe_load((PROMETHEUS_DIR / config_path.name).read_text())
    for rules in config["rule_files"]:
        assert (PROMETHEUS_DIR / rules).is_file(), rules
    # Grafana: provisioning and the dashboards folder, where the provider looks for them.
    gmounts = mounts(grafana)
    assert gmounts["/etc/grafana/provisioning"] == GRAFANA / "provisioning"
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "assistants.yml").read_text())
    (path,) = [p["options"]["path"] for p in provider["providers"]]
    assert gmounts[path] == DASHBOARD.parent
    (datasource,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    port = next(int(p.split(":")[-1]) for p in prom["ports"])
    assert datasource["url"] == f"http://prometheus:{port}" and datasource["type"] == "prometheus"
    dashboard = json.loads(DASHBOARD.read_text())
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert variable["current"]["value"] == datasource["uid"]
    # Like the Temporal UI: published on this host only.
    for service in (prom, grafana):
        assert all(str(p).startswith("127.0.0.1:") for p in service["ports"])


def test_prometheus_scrapes_every_app_process(compose, monkeypatch) -> None:
    services = compose["services"]
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    scraped: dict[str, set[tuple[str, int]]] = {}
    for job in config["scrape_configs"]:
        for sd in job["dns_sd_configs"]:
            assert set(sd["names"]) <= set(services), sd  # Compose service names
            scraped.setdefault(job["job_name"], set()).update((n, int(sd["port"])) for n in sd["names"])
    for role in APP_ROLES:
        settings = settings_from(compose_env(services[role]), monkeypatch)
        assert settings.metrics_host == "0.0.0.0", role  # reachable from the prometheus container
        assert settings.metrics_port and settings.temporal_metrics_port, role
        assert scraped[role] == {(role, settings.metrics_port)}  # the dashboard's `job` is the role
        assert (role, settings.temporal_metrics_port) in scraped["temporal-sdk"]
        assert "ports" not in services[role]  # metrics stay on the compose network


def test_dashboard_shows_every_documented_metric() -> None:
    """Each `assistants_*` metric of README "Metrics" is in some panel's query."""
    section = README.read_text().split("### Metrics", 1)[1].split("\n### ", 1)[0]
    documented = set(re.findall(r"^\| `(assistants_[a-z_]+)`", section, re.M))
    assert len(documented) >= 20
    exprs = " ".join(
        t["expr"] for p in json.loads(DASHBOARD.read_text())["panels"] for t in p.get("targets", [])
    )
    assert not [m for m in sorted(documented) if m not in exprs]
