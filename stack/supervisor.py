"""``assistants up``: run Postgres, Temporal, the workers and the API in the foreground.

The supervisor never imports torch: the model is prepared in a subprocess and every role runs
in its own process (and session, so a terminal Ctrl-C reaches only the supervisor, which then
stops the children in order).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import FrameType

from assistants.keyring import ensure_local_secrets, operator_token
from assistants.logjson import configure_logging
from assistants.settings import Settings, get_settings
from stack.connect import apply_migrations
from stack.ports import free_port, port_is_free
from stack.postgres import EmbeddedPostgres, PostgresError
from stack.processes import (
    Backoff,
    Child,
    become_subreaper,
    pid_alive,
    reap_orphans,
    stop_leftover,
)
from stack.temporal import TemporalDevServer, TemporalError

log = logging.getLogger("assistants.up")

# The children run the `assistants` command as a module; its name also marks their leftovers.
CLI_MODULE = "cli.main"

CHILD_STOP_TIMEOUT = 20.0
POLL_INTERVAL = 0.5


class StackError(RuntimeError):
    pass


class _Shutdown(BaseException):
    """Raised by the signal handler to unwind startup; the main loop only sets a flag."""


def run_up(host: str | None = None, port: int | None = None) -> int:
    settings = get_settings()
    if not logging.getLogger().handlers:
        configure_logging(settings.log_format)
    try:
        return Supervisor(settings, host or settings.host, port or settings.port).run()
    except (StackError, PostgresError, TemporalError) as e:
        log.error("%s", e)
        return 1


class Supervisor:
    def __init__(self, settings: Settings, host: str, port: int):
        self.settings, self.host, self.port = settings, host, port
        self.data_dir = settings.resolved_data_dir
        self.pid_dir = self.data_dir / "pids"
        self.stack_file = self.data_dir / "stack.json"
        self.postgres: EmbeddedPostgres | None = None
        self.temporal: TemporalDevServer | None = None
        self.children: list[Child] = []
        self._info: dict[str, object] = {}
        self._stopping = False
        self._in_loop = False
        self._pg_backoff = Backoff()
        self._pg_restart_at: float | None = None
        self._pg_started_at = 0.0

    @property
    def api_url(self) -> str:
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{shown}:{self.port}"

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)
        become_subreaper()
        try:
            self._start()
            self._supervise()
        except _Shutdown:
            log.info("interrupted during startup")
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            self._shutdown()
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        log.info("received %s; stopping", signal.Signals(signum).name)
        self._stopping = True
        if not self._in_loop:
            raise _Shutdown

    # --- startup ----------------------------------------------------------------------
    def _start(self) -> None:
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        other = _running_supervisor(self.stack_file)
        if other is not None:
            raise StackError(f"a stack is already running for {self.data_dir} (supervisor pid {other})")
        # A supervisor that was SIGKILLed leaves children that die on their own (PDEATHSIG),
        # but maybe not yet: make sure none still holds the Temporal db or a task queue.
        for pid_file in self.pid_dir.glob("*.pid"):
            if pid_file.stem != "postgres":  # EmbeddedPostgres.start() handles its own leftover
                stop_leftover(pid_file, markers=(CLI_MODULE, str(self.data_dir)))
        if not port_is_free(self.port, self.host if self.host not in ("", "::") else "0.0.0.0"):
            raise StackError(f"port {self.port} on {self.host} is in use; pass --port or set ASSISTANTS_PORT")
        self._prepare_model()
        # The embedded stack encrypts by default: a key (and the codec endpoint's operator token)
        # are created in the data dir unless the settings provide them.
        ensure_local_secrets(self.settings)

        database_url = self.settings.database_url
        if not database_url:
            self.postgres = EmbeddedPostgres(
                self.data_dir, self.settings.pg_port, self.settings.pg_shared_buffers
            )
            database_url = self.postgres.start()
            self._pg_started_at = time.monotonic()
            self._write_pid("postgres", self.postgres.pid)

        temporal_address, ui_url = self.settings.temporal_address, self.settings.temporal_ui_url
        if not temporal_address:
            self.temporal = TemporalDevServer(
                self.data_dir, self.pid_dir, dict(os.environ),
                port=self.settings.temporal_port, ui_port=self.settings.temporal_ui_port,
                namespace=self.settings.temporal_namespace, codec_endpoint=self._codec_endpoint(),
            )  # fmt: skip
            self.temporal.start()
            temporal_address, ui_url = self.temporal.address, self.temporal.ui_url

        apply_migrations(database_url)

        env = dict(os.environ)
        env.update(
            DATABASE_URL=database_url,
            TEMPORAL_ADDRESS=temporal_address,
            ASSISTANTS_DATA_DIR=str(self.data_dir),
            PYTHONUNBUFFERED="1",
        )
        if ui_url:
            env["ASSISTANTS_TEMPORAL_UI_URL"] = ui_url
        cli = [sys.executable, "-m", CLI_MODULE]
        roles = {
            "worker-runs": [*cli, "worker", "--queue", "runs"],
            "worker-inference": [*cli, "worker", "--queue", "inference"],
            "api": [*cli, "api", "--host", self.host, "--port", str(self.port)],
        }
        ports = self._metrics_ports(list(roles))
        for role, argv in roles.items():
            child_env = dict(env)
            child_env["ASSISTANTS_METRICS_PORT"] = str(ports[role]["metrics"])
            child_env["ASSISTANTS_TEMPORAL_METRICS_PORT"] = str(ports[role]["temporal"])
            child = Child(role, argv, child_env, self.pid_dir)
            child.start()
            self.children.append(child)

        self._info = {
            "api_url": self.api_url,
            "temporal_ui": ui_url,
            "temporal_address": temporal_address,
            "database_url": database_url,
            # role -> {"metrics": url, "temporal_metrics": url} (README "Metrics")
            "metrics": {
                role: {
                    "metrics": self._metrics_url(p["metrics"]),
                    "temporal_metrics": self._metrics_url(p["temporal"]),
                }
                for role, p in ports.items()
            },
        }
        self._write_stack_file()
        if self.settings.log_format == "json":  # every line of up.log stays a JSON object
            log.info("API: %s", self.api_url)
            if ui_url:
                log.info("Temporal UI: %s", ui_url)
        else:
            print(f"API: {self.api_url}", flush=True)  # noqa: T201
            if ui_url:
                print(f"Temporal UI: {ui_url}", flush=True)  # noqa: T201

    def _metrics_ports(self, roles: list[str]) -> dict[str, dict[str, int]]:
        """Each process's own /metrics ports. Set ASSISTANTS_METRICS_PORT (and/or
        ASSISTANTS_TEMPORAL_METRICS_PORT) to N for N, N+1, N+2 in the order api, worker-runs,
        worker-inference; unset, free ports are picked (they stay the same across restarts)."""
        host = self.settings.metrics_host
        ordered = sorted(roles, key=lambda r: ("api", "worker-runs", "worker-inference").index(r))
        out: dict[str, dict[str, int]] = {}
        picked: set[int] = set()

        def pick() -> int:
            while (port := free_port(host)) in picked:  # the OS may hand out one port twice
                pass
            picked.add(port)
            return port

        for i, role in enumerate(ordered):
            out[role] = {
                kind: (base + i if base else pick())
                for kind, base in (
                    ("metrics", self.settings.metrics_port),
                    ("temporal", self.settings.temporal_metrics_port),
                )
            }
        return out

    def _metrics_url(self, port: int) -> str:
        host = self.settings.metrics_host
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        return f"http://{shown}:{port}/metrics"

    def _codec_endpoint(self) -> str | None:
        """Where the embedded UI decodes payloads. Its requests cannot carry a header, so the
        operator token is in the path: the UI listens on 127.0.0.1 only, for this machine's operator."""
        token = operator_token(self.settings)
        return f"{self.api_url}/codec/t/{token}" if token else None

    def _prepare_model(self) -> None:
        env = dict(os.environ, ASSISTANTS_DATA_DIR=str(self.data_dir))
        argv = [sys.executable, "-m", CLI_MODULE, "prepare-model"]
        # Own session so Ctrl-C reaches only us; subprocess.run kills it when we unwind.
        # Its stdout (the model's path) becomes a log line: up.log stays JSON lines when so configured.
        done = subprocess.run(
            argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, start_new_session=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise StackError(f"`assistants prepare-model` failed with exit code {done.returncode}")
        log.info("model ready: %s", done.stdout.decode(errors="replace").strip())

    # --- running ----------------------------------------------------------------------
    def _supervise(self) -> None:
        self._in_loop = True
        if self._stopping:
            return
        healthy = False
        while not self._stopping:
            time.sleep(POLL_INTERVAL)
            try:
                changed = self._check_parts()
            except Exception:  # a failed restart never stops the stack: the next pass retries
                log.exception("supervising the stack failed; retrying")
                continue
            if changed:
                self._write_stack_file()
            if not healthy and not self._stopping and _health_ok(self.api_url):
                healthy = True
                log.info("stack is ready: %s", self.api_url)

    def _check_parts(self) -> bool:
        """One pass: reap orphans, restart whatever died. True when a pid changed."""
        reap_orphans({c.pid for c in self._all_children() if c.pid is not None})
        changed = False
        if self.postgres is not None and not self._stopping:
            changed |= self._check_postgres()
        for child in self._all_children():
            if not self._stopping:
                changed |= child.check()
        return changed

    def _all_children(self) -> list[Child]:
        return ([self.temporal.child] if self.temporal is not None else []) + self.children

    def _check_postgres(self) -> bool:
        assert self.postgres is not None
        now = time.monotonic()
        if self.postgres.pid is not None:
            if self._pg_restart_at is None and now - self._pg_started_at > Child.STABLE_AFTER:
                self._pg_backoff.reset()
            return False
        if self._pg_restart_at is None:
            delay = self._pg_backoff.next()
            log.error("postgres is not running; restarting it on port %s in %.1fs", self.postgres.port, delay)
            self._pg_restart_at = now + delay
        if now < self._pg_restart_at:
            return False
        try:
            self.postgres.restart()
        except (PostgresError, OSError, subprocess.SubprocessError) as e:
            delay = self._pg_backoff.next()
            log.error("restarting postgres failed; retrying in %.1fs: %s", delay, e)
            self._pg_restart_at = time.monotonic() + delay
            return False
        self._pg_restart_at = None
        self._pg_started_at = time.monotonic()
        self._write_pid("postgres", self.postgres.pid)
        return True

    def _shutdown(self) -> None:
        # Workers and API first, all at once, so in-flight activities drain while the API closes.
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                os.killpg(child.proc.pid, signal.SIGTERM)
        for child in reversed(self.children):
            child.stop(CHILD_STOP_TIMEOUT)
        if self.temporal is not None:
            self.temporal.stop()
        if self.postgres is not None:
            try:
                self.postgres.stop()
            except PostgresError as e:
                log.error("%s", e)
            (self.pid_dir / "postgres.pid").unlink(missing_ok=True)
        if self._info:  # only the stack file we wrote, never another running stack's
            self.stack_file.unlink(missing_ok=True)
        reap_orphans(())
        log.info("stopped")

    # --- state files ------------------------------------------------------------------
    def _write_pid(self, role: str, pid: int | None) -> None:
        if pid is not None:
            (self.pid_dir / f"{role}.pid").write_text(f"{pid}\n")

    def _write_stack_file(self) -> None:
        pids = {c.role: c.pid for c in self.children}
        if self.temporal is not None:
            pids["temporal"] = self.temporal.child.pid
        if self.postgres is not None:
            pids["postgres"] = self.postgres.pid
        info = {**self._info, "supervisor_pid": os.getpid(), "pids": pids}
        # 0600: the database URL carries the password.
        tmp = self.stack_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(info, f, indent=2)
        tmp.replace(self.stack_file)


def _running_supervisor(stack_file: Path) -> int | None:
    try:
        pid = int(json.loads(stack_file.read_text()).get("supervisor_pid") or 0)
    except (OSError, ValueError, AttributeError):
        return None
    return pid if pid > 0 and pid != os.getpid() and pid_alive(pid) else None


def _health_ok(api_url: str) -> bool:
    try:
        with urllib.request.urlopen(api_url + "/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False
