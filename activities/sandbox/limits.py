"""Resource limits applied to every sandbox, read once from settings."""

from __future__ import annotations

from dataclasses import dataclass

from assistants.settings import Settings


@dataclass(frozen=True)
class SandboxLimits:
    memory_bytes: int = (
        4 * 1024**3
    )  # the sandbox's cgroup memory (tmpfs files included); RLIMIT_AS of each process
    cpu_seconds: int = 3600  # RLIMIT_CPU of each sandbox process (the kernel, over its lifetime)
    processes: int = 64  # cgroup pids.max (processes + threads); RLIMIT_NPROC of the uid without a cgroup
    cpus: float = 1.0  # cgroup cpu.max: CPUs the sandbox may use at once
    disk_bytes: int = 1024**3  # size of /mnt/data (a tmpfs where the worker may mount one)
    disk_files: int = 10_000  # files and folders /mnt/data may hold (its inode count)
    returned_files: int = 32  # changed files of one execution that become Files, at most
    returned_bytes: int = 256 * 1024**2  # their total size, at most
    file_size_bytes: int = 256 * 1024**2  # RLIMIT_FSIZE: largest file one write can produce
    tmp_bytes: int = 256 * 1024**2  # size of the sandbox's private /tmp (tmpfs)
    timeout_seconds: float = 120.0  # wall clock per execution, then interrupt; kill if ignored
    output_bytes: int = 1024**2  # stdout/stderr kept per execution (the rest is cut)
    results_bytes: int = 64 * 1024**2  # rich results (images...) kept per execution

    @classmethod
    def from_settings(cls, s: Settings) -> SandboxLimits:
        return cls(
            memory_bytes=s.sandbox_memory_bytes,
            cpu_seconds=s.sandbox_cpu_seconds,
            processes=s.sandbox_processes,
            cpus=s.sandbox_cpus,
            disk_bytes=s.sandbox_disk_bytes,
            disk_files=s.sandbox_disk_files,
            returned_files=s.sandbox_returned_files,
            returned_bytes=s.sandbox_returned_bytes,
            file_size_bytes=s.sandbox_file_size_bytes,
            tmp_bytes=s.sandbox_tmp_bytes,
            timeout_seconds=s.sandbox_timeout_seconds,
            output_bytes=s.sandbox_output_bytes,
        )
