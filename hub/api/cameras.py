"""The ``camera`` device class: the state a camera publishes, its events and the methods the hub
calls (API v1). Declarations only: camera drivers share their code through the camera kits.

State (retained on ``<base>/<device>``, every field optional: a camera publishes what it reports):
the event flags ``motion``, ``video_loss``, ``tamper``, ``line_crossing``, ``intrusion`` (booleans,
true while the event lasts), ``clock_skew`` (seconds the camera's clock is off), ``dark`` (the
picture says it is dark; the night-light rule reads it), ``offline_cause`` (set by the
``offline_cause`` rule), and the image-health fields that plugin adds.

Events (``<base>/bridge/event``): each flag as an event of the same name with ``channel`` and
``active`` (``active: false`` ends it; an end the camera never sends comes after a timeout with
``ended: "timeout"``, in every driver); ``camera_offline`` (from the ``offline_cause`` rule).

Methods: ``snapshot(channel)`` returns JPEG bytes; ``stream_url(channel)`` the RTSP URL; both are
used by the image checks and by officers' requests.
"""

from __future__ import annotations

from typing import Protocol, TypedDict

FLAGS = ("motion", "video_loss", "tamper", "line_crossing", "intrusion")
"""Boolean state fields that are also events (with ``channel`` and ``active``)."""

MORE_FLAGS: dict[str, str] = {
    "region_entrance": "someone entered a region", "region_exiting": "someone left a region",
    "scene_change": "the camera's scene changed", "defocus": "the picture lost focus",
    "alarm_input": "an alarm input (dry contact) of the device changed", "pir": "the PIR sensor saw a body",
    "face": "a face was detected", "unattended_baggage": "an object was left",
    "object_removal": "an object was taken away", "bad_video": "the video signal is abnormal",
    "video_mismatch": "the video standard does not match",
}
"""Further flags a camera or recorder may report (same shape as :data:`FLAGS`: state field and event
with ``channel`` and ``active``; they appear in the state once the device first reports them)."""


class CameraState(TypedDict, total=False):
    motion: bool
    video_loss: bool
    tamper: bool
    line_crossing: bool
    intrusion: bool
    clock_skew: float | None
    dark: bool | None
    offline_cause: str | None


CAMERA_EVENTS: dict[str, tuple[str, ...]] = {
    **{flag: ("channel", "active") for flag in FLAGS},
    "camera_offline": ("cause", "detail"),
}
"""Event type → its fields (besides ``type``, ``time``, ``device``, ``site``); an event that ends on
a timeout adds ``ended: "timeout"``. The full declarations (required and optional fields):
:data:`hub.api.contract.EVENTS`."""


class CameraMethods(Protocol):
    """What a camera driver offers the hub beyond ``connect``/``poll``/``listen``/``close``."""

    async def snapshot(self, channel: int | None = None) -> bytes: ...

    def stream_url(self, channel: int | None = None) -> str | None: ...
