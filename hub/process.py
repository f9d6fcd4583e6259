"""Stopping a child process the hub or its simulators started (the RTSP server of ``anninh
simulate``; the test support's brokers and servers use it too)."""

from __future__ import annotations

import subprocess


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(grace)

