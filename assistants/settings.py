"""One settings object per process, read once from the environment.

Every variable is prefixed ``ASSISTANTS_`` except the few that deployments conventionally
set unprefixed (``DATABASE_URL``, ``TEMPORAL_ADDRESS``, ``E2B_API_KEY``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from assistants.model_providers import RemoteModel, parse_providers

RUNS_TASK_QUEUE = "assistants-runs"
INFERENCE_TASK_QUEUE = "assistants-inference"
DEFAULT_MODEL = "smollm2-135m-instruct"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSISTANTS_", extra="ignore", populate_by_name=True)

    env: Literal["dev", "production"] = "dev"
    data_dir: Path = Path(".data")

    # Connections. Unset = the embedded servers that `assistants up` starts in data_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "ASSISTANTS_DATABASE_URL")
    )
    temporal_address: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS", "ASSISTANTS_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = "default"
    temporal_ui_url: str | None = None
    # Register AssistantId/ThreadId/ProjectId (Keyword) on a cluster, or set this false.
    temporal_search_attributes: bool = True
    runs_task_queue: str = RUNS_TASK_QUEUE
    inference_task_queue: str = INFERENCE_TASK_QUEUE

    # API process.
    host: str = "127.0.0.1"
    port: int = 8000
    max_request_bytes: int = 2 * 1024 * 1024  # request body limit, counted on the wire (413)

    # Prometheus /metrics of this process (assistants/metrics.py; issue 17), off the public port.
    # 0 = off. `assistants up` gives each of its processes one (listed in DATA/stack.json).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535)
    # Temporal SDK metrics through its runtime's Prometheus exporter, on metrics_host. 0 = off.
    temporal_metrics_port: int = Field(default=0, ge=0, le=65535)

    # Log lines of every process (assistants/logjson.py; issue 17): `json` writes one JSON object
    # a line, with the run's ids (run_id, thread_id, project_id, workflow_id) within a run.
    log_format: Literal["text", "json"] = "text"

    # OpenTelemetry traces of every process (assistants/tracing.py; issue 17), off by default:
    # request -> workflow -> activities -> their Postgres and HTTP calls, exported over OTLP/HTTP
    # to OTEL_EXPORTER_OTLP_ENDPOINT (the SDK's default, http://localhost:4318, when unset).
    otel_enabled: bool = False
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_ENDPOINT", "ASSISTANTS_OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )

    # --- Per-project quotas and rate limits (api/limits.py; issue 12). 0 = off. ----------------
    project_requests_per_minute: int = Field(default=3000, ge=0)  # authenticated requests (429)
    project_max_active_runs: int = Field(default=100, ge=0)  # queued..cancelling at once (429)
    project_max_stored_bytes: int = Field(default=100 * 1024**3, ge=0)  # sum of files' bytes (429)

    # Embedded servers (only used when DATABASE_URL / TEMPORAL_ADDRESS are unset). 0 = pick a free port.
    pg_port: int = 0
    # The embedded Postgres' shared_buffers (Postgres' default, 128MB, is too small for 100k chunks).
    pg_shared_buffers: str = Field(default="1GB", pattern=r"^[1-9][0-9]*(kB|MB|GB)$")
    temporal_port: int = 0
    temporal_ui_port: int = 8233

    # Models. `models` maps a public model name to an HF id or local path, comma separated:
    # "name=path,name2=Org/Model". The default model is always available.
    models: str = ""
    default_model: str = DEFAULT_MODEL
    # Remote models on OpenAI-compatible engines (vLLM...): JSON, see assistants/model_providers.py.
    model_providers: str = ""
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | float16 | bfloat16
    max_batch_size: int = 16
    max_concurrent_generations: int = 32
    max_context_tokens: int = 8192
    # OpenAI refuses a run's max_completion_tokens below 256; the test suite lowers it to write
    # short answers on CPU.
    min_completion_tokens: int = Field(default=256, ge=1)

    # Runs.
    run_expires_seconds: int = 600
    max_run_expires_seconds: int = 7 * 24 * 3600
    # Reconciler (issue 11): the Temporal Schedule `assistants-reconcile-runs` (ensured by every
    # runs worker) settles active runs whose workflow is missing or closed. Every N seconds it
    # looks at runs older than the grace period (a run's row is inserted just before its workflow
    # starts), a batch of rows per activity call.
    reconcile_interval_seconds: int = Field(default=30, ge=1)
    reconcile_grace_seconds: int = Field(default=60, ge=0)
    reconcile_batch_size: int = Field(default=200, ge=1, le=1000)

    # Code interpreter.
    e2b_api_key: str | None = Field(
        default=None, validation_alias=AliasChoices("E2B_API_KEY", "ASSISTANTS_E2B_API_KEY")
    )

    # --- Code-interpreter sandbox (activities/sandbox; owner: sandbox) -------------------------
    # Local backend limits, per sandbox. Env: ASSISTANTS_SANDBOX_<NAME>.
    # Memory of the whole sandbox (its cgroup, tmpfs files included), and each process's RLIMIT_AS.
    sandbox_memory_bytes: int = 4 * 1024**3
    sandbox_cpu_seconds: int = 3600  # RLIMIT_CPU of each sandbox process, over its lifetime
    sandbox_processes: int = 64  # processes + threads of one sandbox (cgroup pids.max)
    sandbox_cpus: float = 1.0  # CPUs one sandbox may use at once (cgroup cpu.max)
    sandbox_disk_bytes: int = 1024**3  # size of a sandbox's /mnt/data (a tmpfs where mountable)
    sandbox_disk_files: int = 10_000  # files + folders its /mnt/data may hold
    sandbox_returned_files: int = 32  # changed files of one execution returned as Files, at most
    sandbox_returned_bytes: int = 256 * 1024**2  # their total bytes, at most
    sandbox_max_sessions: int = 32  # live sandboxes per worker; the least recently used idle one is evicted
    sandbox_file_size_bytes: int = 256 * 1024**2  # RLIMIT_FSIZE: largest file it can write
    sandbox_tmp_bytes: int = 256 * 1024**2  # size of its private /tmp (tmpfs, counts as RAM)
    sandbox_timeout_seconds: float = 120.0  # wall clock per execution: interrupt, then kill
    sandbox_output_bytes: int = 1024**2  # stdout/stderr kept per execution
    sandbox_idle_timeout_seconds: float = 3600.0  # a thread's session closes after this idle time
    sandbox_uid: int = 65534  # unprivileged uid/gid the sandbox runs as (nobody)
    # Python runtime the sandbox sees read-only (built by scripts/setup_sandbox.sh).
    sandbox_runtime: Path = Path("/opt/assistants-sandbox/venv")
    # Host folder for per-session work dirs (bound at /mnt/data). None = <tmp>/assistants-sandbox.
    sandbox_work_root: Path | None = None
    # Run the kernel WITHOUT isolation when bubblewrap is unusable. Never in production.
    sandbox_unsafe: bool = False
    # --- end sandbox ---------------------------------------------------------------------------

    # --- Files, vector stores, retrieval (owner: files; issue 5) -------------------------------
    max_file_bytes: int = 512 * 1024**2  # largest upload to /v1/files (413 above it)
    # /v1/uploads (issue 14): a file sent in parts, as OpenAI documents it (8 GB, 64 MB parts, 1 h).
    upload_max_bytes: int = Field(default=8 * 1024**3, ge=1)  # `bytes` of one Upload, at most
    upload_part_max_bytes: int = Field(default=64 * 1024**2, ge=1)  # one part (413 above it)
    upload_expires_seconds: int = Field(default=3600, ge=60)  # a pending Upload expires after this
    storage_backend: Literal["local", "s3"] = "local"
    storage_dir: Path | None = None  # local backend root; None = <data_dir>/files
    s3_bucket: str | None = None
    s3_prefix: str = ""  # keys are <prefix><project_id>/<file_id>
    s3_endpoint_url: str | None = None  # e.g. a MinIO/SeaweedFS endpoint; None = AWS
    s3_region: str | None = None
    # Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, profiles, roles).
    # HF id or local folder of a sentence-embedding model (mean-pooled); None = the bundled all-MiniLM-L6-v2.
    embedding_model: str | None = None
    embedding_batch_size: int = 32
    # Weights' dtype: auto = bfloat16 where the CPU has native bf16 (or on CUDA), else float32.
    embedding_dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # Default result count of file_search in runs (the API's max_num_results is 1-50).
    file_search_max_results: int = 20
    # HNSW scans of file_search (assistants/db/search_sql.py SearchTuning; issue 18). ef_search by
    # the index's size, "CHUNKS:EF,..." (from CHUNKS indexed chunks on, EF); iterative scans keep
    # walking the graph past filtered-out rows, up to max_scan_tuples rows (pgvector >= 0.8).
    file_search_ef_search: str = "0:100,30000:150,60000:200,200000:300"
    file_search_iterative_scan: Literal["off", "relaxed_order", "strict_order"] = "relaxed_order"
    file_search_max_scan_tuples: int = Field(default=20_000, ge=1)
    # Query words found in more than this fraction of all chunks (the table's statistics) are left
    # out of the full-text leg (all but the least common, if every word is that common). 1 = keep all.
    file_search_common_term_frequency: float = Field(default=0.05, gt=0, le=1)
    # ...and, rarest first, once the words kept match this many chunks (estimated), the rest (the
    # full-text leg ranks every chunk that matches: this bounds its cost at any table size).
    file_search_text_match_budget: int = Field(default=5_000, ge=1)
    # The vector and full-text legs at once on two pooled connections (false: one after the other).
    file_search_parallel_legs: bool = False
    # ef_search of a search with attribute filters: this many times the schedule's (at most 1000).
    file_search_filtered_ef_factor: int = Field(default=4, ge=1, le=10)
    # Parsing (issue 12): each file is parsed in a child process under these limits; a file past
    # any of them ends `failed` (invalid_file), never retried. The timeout stays under the parse
    # activity's 30-minute start-to-close timeout (workflows/ingest_options.py).
    parse_timeout_seconds: float = Field(default=300.0, gt=0, lt=1800)
    parse_memory_bytes: int = Field(default=2 * 1024**3, ge=256 * 1024**2)  # RLIMIT_AS
    parse_cpu_seconds: int = Field(default=300, ge=1)  # RLIMIT_CPU
    parse_max_chars: int = Field(default=20_000_000, ge=1)  # extracted text per file
    parse_max_unzipped_bytes: int = Field(default=512 * 1024**2, ge=1)  # .docx/.pptx members, together
    parse_max_zip_ratio: int = Field(default=200, ge=1)  # per member over 1 MiB
    parse_max_zip_members: int = Field(default=10_000, ge=1)
    # --- end files -----------------------------------------------------------------------------

    # --- Webhooks (owner: webhooks; issue 3 item 6) -------------------------------------------
    # Per-attempt HTTP timeout of a delivery (must stay below the activity's 60 s start-to-close).
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, lt=60)
    # How long a delivery keeps retrying (backoff 1 s doubling, capped at 10 min) before it is failed.
    webhook_delivery_window_seconds: int = Field(default=3 * 24 * 3600, gt=0)
    # May webhooks target loopback/private/link-local addresses? Unset: yes in dev, no in production.
    webhook_allow_private: bool | None = None

    @property
    def webhooks_may_reach_private(self) -> bool:
        return self.env == "dev" if self.webhook_allow_private is None else self.webhook_allow_private

    # --- end webhooks --------------------------------------------------------------------------

    # --- Secrets at rest (assistants/keyring.py; issue 12) ------------------------------------
    # AES-256-GCM key (base64 of 32 bytes) for Temporal payloads and webhook signing secrets.
    # Unset: the data dir's `payload.key`, which `assistants up` creates; required in production.
    payload_key: SecretStr | None = None
    # Retired keys, comma separated: they still decrypt what they encrypted, never encrypt.
    payload_old_keys: str = ""
    # Bearer credential of the codec endpoint (/codec) the Temporal UI decodes payloads with.
    # Unset: the data dir's `operator.token`, which `assistants up` creates; no token = always 401.
    operator_token: SecretStr | None = None
    # --- end secrets at rest -------------------------------------------------------------------

    @model_validator(mode="after")
    def _check_ef_search(self) -> Settings:
        from assistants.db.search_sql import parse_ef_schedule

        parse_ef_schedule(self.file_search_ef_search)  # a bad schedule stops a process at start
        return self

    @model_validator(mode="after")
    def _check_model_providers(self) -> Settings:
        parse_providers(self.model_providers)  # a bad provider config stops a process at start
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "production":
            missing = [
                n
                for n, v in (("DATABASE_URL", self.database_url), ("TEMPORAL_ADDRESS", self.temporal_address))
                if not v
            ]
            if missing:
                raise ValueError(
                    f"ASSISTANTS_ENV=production needs {', '.join(missing)} (no embedded servers in production)"
                )
            if self.payload_key is None:
                raise ValueError(
                    "ASSISTANTS_ENV=production needs ASSISTANTS_PAYLOAD_KEY (Temporal payloads and webhook"
                    " secrets are encrypted with it)"
                )
            if self.sandbox_unsafe:
                raise ValueError(
                    "ASSISTANTS_SANDBOX_UNSAFE=true runs user code without isolation: refused in production"
                )
        return self

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    def model_paths(self) -> dict[str, str]:
        """Public model name -> HF id or local path (the default model maps to its prepared folder)."""
        out: dict[str, str] = {
            self.default_model: str(self.resolved_data_dir / "models" / self.default_model)
        }
        for item in filter(None, (p.strip() for p in self.models.split(","))):
            name, _, path = item.partition("=")
            out[name.strip()] = (path or name).strip()
        return out

    def remote_models(self) -> dict[str, RemoteModel]:
        """Model id -> its OpenAI-compatible endpoint (ASSISTANTS_MODEL_PROVIDERS)."""
        return parse_providers(self.model_providers)

    def model_names(self) -> list[str]:
        """Every model id this deployment serves: in-process ones first, then remote ones."""
        return list(dict.fromkeys([*self.model_paths(), *self.remote_models()]))


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
