"""The command service: who may command which device (roles from the one :data:`hub.security.RIGHTS`
table that ``anninh acl`` also writes into the broker's ACL), strict validation against the
device's command model, the audit trail and rejection summaries. A command is acknowledged only
once its audit row (and any hold the driver remembered) is committed (:meth:`Storage.durable`)."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from hub.api import Command, CommandError
from hub.config import Config
from hub.core.runner import describe_error
from hub.core.state import StateStore
from hub.core.storage import Storage
from hub.redact import redact, redact_cut
from hub.security import RIGHTS

if TYPE_CHECKING:
    from hub.core.runner import DeviceRunner

log = logging.getLogger("hub")


_WORDS = frozenset({"on", "off", "toggle", "auto", "manual"})
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def audit_form(payload: Any) -> dict[str, Any]:
    """What the audit trail keeps of a command: field names that look like field names, numbers,
    booleans and the command words; any other text only as its length (a person may type a
    password anywhere), or masked where it holds a known secret."""
    if not isinstance(payload, dict):
        return {"raw": f"<{type(payload).__name__}>"}
    out: dict[str, Any] = {}
    for i, (key, value) in enumerate(payload.items()):
        if i == 8:
            out["..."] = f"{len(payload) - 8} more field(s)"
            break
        k = str(key)
        name = k if _FIELD.fullmatch(k) else (redact(k) if redact(k) != k else f"<field of {len(k)} chars>")
        out[name] = _audit_value(value)
    return out


def _audit_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if value.lower() in _WORDS:
            return value
        masked = redact(value)
        return masked if masked != value else f"<text of {len(value)} chars>"
    if isinstance(value, list | tuple | dict):
        return f"<{type(value).__name__} of {len(value)}>"
    return f"<{type(value).__name__}>"


@dataclass
class _Rejections:
    """Rejections of one user and kind within one interval, beyond the first (already reported)."""

    count: int = 0
    device: str = ""
    error: str = ""
    source: str = ""


class CommandService:
    """Checks, carries out and audits commands to the devices."""

    rejection_interval = 10.0
    """A named user's rejected commands of one kind are reported once per this many seconds: the
    first at once, the others in one ``command_rejected`` with their ``count`` at the end."""

    def __init__(self, config: Config, runners: Mapping[str, DeviceRunner], store: StateStore,
                 storage: Storage) -> None:
        self.config = config
        self.runners = runners
        self.store = store
        self.storage = storage
        self._rejections: dict[tuple[str, str], _Rejections] = {}

    def close(self) -> None:
        """Report the summaries not yet due (the hub is stopping)."""
        for key in list(self._rejections):
            self._end_rejections(key)

    async def command(self, device_id: str, payload: dict[str, Any], *, source: str = "mqtt",
                      user: str | None = None, reason: str | None = None, reason_code: str | None = None) -> bool:
        """Validate and carry out a command. Returns True when the device took it."""
        runner = self.runners.get(device_id)
        if runner is None or runner.driver is None:
            self.reject_command(device_id, "unknown device" if runner is None else "device has no driver",
                                user=user, payload=payload, source=source, kind="unknown_device")
            return False
        refusal = self._refuse_user(user, runner.config.site) if user is not None else None
        if refusal is not None:
            self.reject_command(device_id, refusal, user=user, payload=payload, source=source, kind="not_allowed")
            return False
        model = runner.driver.command_model
        if model is None:
            self.reject_command(device_id, "this device takes no commands", user=user, payload=payload,
                                source=source, kind="unknown_device")
            return False
        try:
            # strict: no coercion of "3600" or true into numbers (the documented payloads only)
            parsed = model.model_validate(payload, strict=True)
        except ValidationError as exc:
            self.reject_command(device_id, _short_validation(exc), user=user, payload=payload, source=source,
                                kind="invalid")
            return False
        cmd = Command(payload=parsed, source=source, user=user, reason=reason, reason_code=reason_code)
        done = parsed.model_dump(exclude_none=True, mode="json")
        try:
            async with runner.lock:
                async with asyncio.timeout(runner.config.timeout):
                    result = await runner.driver.handle_command(cmd)
        except CommandError as exc:
            self.reject_command(device_id, redact(str(exc)), user=user, payload=payload, source=source,
                                kind="refused")
            await self.storage.durable()
            return False
        except Exception as exc:
            error = describe_error(exc, runner.config.timeout)
            self._audit(user, device_id, done, source, "failed", error)
            self.store.emit("command_failed", device=device_id, error=error, user=user, source=source)
            log.warning("command failed: %s", self._describe(user, device_id, done, source, error))
            await self.storage.durable()
            return False
        if result:
            self.store.update(device_id, result)
        self._audit(user, device_id, done, source, "ok", None)
        if source != "internal" and cmd.by_person:
            self.store.emit("command", device=device_id, user=user, source=source, command=done)
            log.info("command: %s", self._describe(user, device_id, done, source, None))
        await self.storage.durable()
        return True

    @staticmethod
    def _describe(user: str | None, device: str, command: Any, source: str, error: str | None) -> str:
        """One log line's worth: who, which device, what; never a secret."""
        who = f"user {redact_cut(user, 64)}" if user is not None else f"anonymous ({source})"
        what = json.dumps(audit_form(command), ensure_ascii=False, separators=(",", ":"))
        return redact(f"{who} -> {redact_cut(device, 64)} {what}" + (f": {error}" if error else ""))

    def _refuse_user(self, user: str, site: str | None) -> str | None:
        """Roles checked in the hub too, not only by the broker's ACL (defence in depth). With no
        ``users:`` in the config, any name is taken as given (installs without accounts)."""
        if not self.config.users:
            return None
        account = next((u for u in self.config.users if u.name == user), None)
        if account is None:
            return f"unknown user {redact_cut(user, 64)!r}"  # redacted before it is cut
        rights = RIGHTS.get(account.role)
        if rights is None or not rights.command:
            return f"role {account.role} may not send commands"
        if rights.honours_sites and account.sites is not None and site not in account.sites:
            return f"user {user} may not command devices at this site"
        return None

    def reject_command(self, device_id: str, error: str, *, user: str | None, payload: Any, source: str,
                       kind: str = "invalid") -> None:
        """Audit, log and announce a rejected command. A named user's rejections are summarised:
        per user and ``kind`` (``malformed``, ``unknown_device``, ``not_allowed``, ``invalid``,
        ``refused``) the first of each :attr:`rejection_interval` is reported at once, the rest in
        one ``command_rejected`` with a ``count`` when the interval ends, so a flood of bad commands
        costs a few rows and events, not one each. This applies where the config has ``users``
        (the broker's ACL then vouches for the name in ``/set/<user>``); anonymous ``/set`` and
        installs without accounts get every rejection reported, and the history's size budget."""
        if user is not None and self.config.users:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            key = (user, kind)
            if loop is not None:
                window = self._rejections.get(key)
                if window is not None:
                    window.count += 1
                    window.device, window.error, window.source = device_id, error, source
                    return
                self._rejections[key] = _Rejections()
                loop.call_later(self.rejection_interval, self._end_rejections, key)
        self._report_rejection(device_id, error, user=user, payload=payload, source=source, kind=kind)

    def _end_rejections(self, key: tuple[str, str]) -> None:
        window = self._rejections.pop(key, None)
        if window is None or not window.count:
            return
        user, kind = key
        self._report_rejection(window.device, window.error, user=user, payload=None, source=window.source,
                               kind=kind, count=window.count)

    def _report_rejection(self, device_id: str, error: str, *, user: str | None, payload: Any, source: str,
                          kind: str, count: int = 0) -> None:
        summary = f" ({count} more {kind} command(s) rejected in {self.rejection_interval:g} s; last shown)" \
            if count else ""
        self._audit(user, device_id, payload if not count else {"rejected": count}, source, "rejected",
                    error + summary)
        data: dict[str, Any] = {"error": error, "source": source}
        if user:
            data["user"] = redact_cut(user, 64)
        if count:
            data["count"] = count
        known = device_id in self.runners
        self.store.emit("command_rejected", device=device_id if known else None, **data,
                  **({} if known else {"target": redact_cut(device_id, 64)}))
        log.info("command rejected: %s%s", self._describe(user, device_id, payload if not count else {},
                                                          source, error), summary)

    def _audit(self, user: str | None, device: str, payload: Any, source: str, result: str,
               error: str | None) -> None:
        history = self.storage.history
        if history is None or not source or source.startswith("rule:"):
            return
        history.add_audit(self.store.clock.now(), user, device, audit_form(payload), result, error)


def _short_validation(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err["loc"]) or "command"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return "; ".join(parts)
