"""Helpers for the local servers tests and benchmarks start (brokers, RTSP, simulators)."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:  # type: ignore[type-arg]
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)

