"""The ``recorder`` device class (DVR/NVR): the state it publishes and its events (API v1).
Declarations only; this module is the state contract (the search and download of recordings is
declared apart).

State (retained on ``<base>/<device>``): the camera flags (true when any channel has them, see
:mod:`hub.api.cameras`), ``channels`` = ``{"1": {"online": true, "motion": false, ...,
"retention_days": 12}}``, ``channels_online``, ``disks`` = ``[{"id", "capacity", "free",
"status"}]`` (MB), ``retention_days`` (footage actually kept), ``retention_target_days``,
``clock_skew``.

Events: the camera flag events with ``channel``; ``channel_offline`` / ``channel_online`` with
``channel``; ``disk_full`` (``disk``, ``capacity``), ``disk_error`` (``disk``, ``status``),
``disk_missing`` (``disk``, and ``previous`` or ``error``); ``retention_low`` (``days``, ``target``,
``channels``) / ``retention_ok`` (``days``, ``target``).
"""

from __future__ import annotations

from typing import TypedDict

from .cameras import CAMERA_EVENTS, CameraState


class Disk(TypedDict):
    id: str
    capacity: float | None
    free: float | None
    status: str


class ChannelState(TypedDict, total=False):
    online: bool
    motion: bool
    video_loss: bool
    tamper: bool
    retention_days: float | None


class RecorderState(CameraState, total=False):
    channels: dict[str, ChannelState]
    channels_online: int
    disks: list[Disk]
    retention_days: float | None
    retention_target_days: float | None


RECORDER_EVENTS: dict[str, tuple[str, ...]] = {
    **{k: v for k, v in CAMERA_EVENTS.items() if k != "camera_offline"},
    "channel_offline": ("channel",), "channel_online": ("channel",),
    "disk_full": ("disk", "capacity"), "disk_error": ("disk", "status"), "disk_missing": ("disk",),
    "retention_low": ("days", "target", "channels"), "retention_ok": ("days", "target"),
}
"""Event type → its fields (besides ``type``, ``time``, ``device``, ``site``)."""

DEVICE_EVENTS: dict[str, str] = {
    "network_broken": "a network interface of the recorder is down", "ip_conflict": "another host has its IP",
    "illegal_access": "repeated failed logins on the recorder", "recording_failure": "the recorder fails to record",
}
"""Device-level events without fields (once per episode), besides the disk events above."""
