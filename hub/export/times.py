"""The times an officer types for an export window (the hub's local wall clock)."""

from __future__ import annotations

import argparse
from datetime import datetime

TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M")


def parse_time(value: str) -> datetime:
    for fmt in TIME_FORMATS:
        try:
            return datetime.strptime(value.strip(), fmt)
        except ValueError:
            continue
    raise argparse.ArgumentTypeError(f"{value!r} is not a time like \"2026-11-30 19:30[:00]\"")
