"""The code-interpreter sandbox: one interface (`Sandbox`), a local bubblewrap backend and E2B.

`provider_from_settings` picks the backend the worker and `assistants sandbox run` both use.
"""

from __future__ import annotations

from activities.sandbox.base import (
    WORK_DIR,
    Execution,
    ExecutionError,
    FileInfo,
    FileSink,
    FileSource,
    Result,
    Sandbox,
    SandboxBusy,
    SandboxDead,
    SandboxError,
    SandboxProvider,
    SandboxUnavailable,
)
from activities.sandbox.limits import SandboxLimits
from activities.sandbox.sessions import SandboxSessions
from assistants.settings import Settings

__all__ = [
    "WORK_DIR",
    "Execution",
    "ExecutionError",
    "FileInfo",
    "FileSink",
    "FileSource",
    "Result",
    "Sandbox",
    "SandboxBusy",
    "SandboxDead",
    "SandboxError",
    "SandboxLimits",
    "SandboxProvider",
    "SandboxSessions",
    "SandboxUnavailable",
    "provider_from_settings",
    "sessions_from_settings",
]


def provider_from_settings(settings: Settings) -> SandboxProvider:
    """E2B when E2B_API_KEY is set, else the local bubblewrap sandbox. Nothing starts here."""
    limits = SandboxLimits.from_settings(settings)
    if settings.e2b_api_key:
        from activities.sandbox.e2b import E2BSandboxProvider

        return E2BSandboxProvider(
            settings.e2b_api_key, limits, idle_timeout=settings.sandbox_idle_timeout_seconds
        )
    from activities.sandbox.local import LocalConfig, LocalSandboxProvider, default_work_root

    cfg = LocalConfig(
        runtime=settings.sandbox_runtime,
        work_root=settings.sandbox_work_root or default_work_root(),
        uid=settings.sandbox_uid,
        unsafe=settings.sandbox_unsafe,
    )
    return LocalSandboxProvider(cfg, limits)


def sessions_from_settings(settings: Settings) -> SandboxSessions:
    return SandboxSessions(
        provider_from_settings(settings),
        idle_timeout=settings.sandbox_idle_timeout_seconds,
        max_sessions=settings.sandbox_max_sessions,
    )
