"""Why is this camera offline? (issue "cameras and recorders", offline cause)

When a camera or recorder goes offline, the rule waits ``settle`` seconds (the other devices of
the site, the UPS and the recorder need a poll to notice too), then names the most likely cause:

0. ``auth_refused``: it answered and refused the hub's user name or password: it has power and
   network, so this is never a site cause, whatever its neighbours do;
1. ``site_power_lost``: its site's power is ``lost`` (a UPS on battery, a meter without mains) or a
   power cut is suspected there;
2. ``recorder_video_loss``: the recorder it is wired to (``recorder:`` / ``recorder_channel:`` in
   the camera's config) reports video loss or the channel offline;
3. ``site_unreachable``: every device of its site is offline (host house's network or power), not
   counting devices that refused their login (those were reached);
4. ``camera_down``: the camera alone is down.

The camera's state gets ``offline_cause`` (the code) and ``offline_detail`` (the sentence, in the hub's
language), cleared when it returns, and one ``camera_offline`` event carries the cause (its ``message``
is the sentence for that cause, :data:`hub.api.contract.OFFLINE_CAUSES`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic import Field

from hub.api import AvailabilityChange, Rule, RuleContext, StrictModel
from hub.i18n import _, tr

WATCHED_KINDS = ("camera", "recorder")


class OfflineCauseOptions(StrictModel):
    settle: float = Field(10.0, ge=0, le=600, description="seconds to wait before naming the cause")


class OfflineCauseRule(Rule):
    name = "offline_cause"
    options_model = OfflineCauseOptions

    def __init__(self, ctx: RuleContext, options: Any) -> None:
        super().__init__(ctx, options or OfflineCauseOptions())
        self.opts: OfflineCauseOptions = self.options  # type: ignore[assignment]
        self.pending: dict[str, asyncio.Task[None]] = {}
        self.auth_refused: set[str] = set()
        """Devices offline because they refused the credentials (reached, so not a network cause)."""

    def on_availability(self, change: AvailabilityChange) -> None:
        if not change.available and getattr(change, "error_kind", None) == "auth":
            self.auth_refused.add(change.device_id)
        else:
            self.auth_refused.discard(change.device_id)
        if self.ctx.device_kind(change.device_id) not in WATCHED_KINDS:
            return
        task = self.pending.pop(change.device_id, None)
        if task is not None:
            task.cancel()
        if change.available:
            if self.ctx.state(change.device_id).get("offline_cause") is not None:
                self.ctx.update_device(change.device_id, {"offline_cause": None, "offline_detail": None})
            return
        self.pending[change.device_id] = self.ctx.create_task(self._later(change.device_id, change.site),
                                                              name=f"offline-cause-{change.device_id}")

    async def _later(self, device_id: str, site: str | None) -> None:
        await asyncio.sleep(self.opts.settle)
        self.pending.pop(device_id, None)
        if self.ctx.available(device_id) is not False:
            return
        cause, detail = self.cause(device_id, site)
        self.ctx.update_device(device_id, {"offline_cause": cause, "offline_detail": detail})
        self.ctx.event("camera_offline", device=device_id, site=site, cause=cause, detail=detail)

    def cause(self, device_id: str, site: str | None) -> tuple[str, str]:
        if device_id in self.auth_refused:
            return "auth_refused", _("the camera answered but refused the user name or password: check "
                                     "username/password in its config entry (not a network or power cause)")
        if site is not None:
            site_state = self.ctx.site_state(site)
            if site_state.get("power") == "lost":
                return "site_power_lost", tr("power lost at {site}: {source}", site=site,
                                             source=site_state.get("power_cause") or _("UPS/meter"))
            if site_state.get("suspected_power_loss"):
                return "site_power_lost", tr("power cut suspected at {site} (all devices dropped together)",
                                             site=site)
        config = next((d for d in self.ctx.devices() if d.id == device_id), None)
        recorder = getattr(config, "recorder", None)
        channel = getattr(config, "recorder_channel", None)
        if recorder and self.ctx.available(recorder):
            ch = (self.ctx.state(recorder).get("channels") or {}).get(str(channel)) if channel else None
            if isinstance(ch, dict) and (ch.get("video_loss") or ch.get("online") is False):
                return "recorder_video_loss", tr("recorder {recorder} reports video loss on channel {channel}",
                                                 recorder=recorder, channel=channel)
        if site is not None:
            others = [d.id for d in self.ctx.devices() if d.site == site and d.id != device_id]
            if others and all(self.ctx.available(d) is False and d not in self.auth_refused for d in others):
                return "site_unreachable", tr("every device at {site} is offline (host house network or power)",
                                              site=site)
        return "camera_down", _("the camera alone is down; its site and recorder are fine")

    async def stop(self) -> None:
        for task in self.pending.values():
            task.cancel()
