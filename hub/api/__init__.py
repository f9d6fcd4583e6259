"""The public plugin API: what a plugin imports from the hub lives here, beside the kits that
``hub.API_MODULES`` lists (docs/plugins.md, "What a plugin may import").

A plugin registers *platforms* (device types) and *rules* through the hooks in
:mod:`hub.hookspecs`. A platform is a :class:`PlatformSpec`: a pydantic config model for the
device's section in the YAML file, and a :class:`Driver` class. The hub creates one driver per
configured device and runs it behind its own error boundary:

* :meth:`Driver.connect` once at start and again after every failure (with capped backoff);
* :meth:`Driver.poll` every ``poll_interval`` seconds, returning state fields;
* :meth:`Driver.listen`, if overridden, as a long-running task for push sources (event streams),
  which reports through :meth:`DeviceContext.update` and :meth:`DeviceContext.event`;
* :meth:`Driver.handle_command` for validated commands from MQTT (or from rules).

Raising :class:`DeviceError` (or any exception, or timing out) marks the device offline; the
hub logs that once, retries forever with capped exponential backoff, and logs once on recovery.

Device classes (part of API v1): :mod:`hub.api.lights` (``light``: a base driver that only needs
its relay read and written), :mod:`hub.api.ups` (``ups``: a base driver that only returns raw
readings), :mod:`hub.api.cameras` and :mod:`hub.api.recorders` (the state and events they publish);
:mod:`hub.api.contract` declares the MQTT topics and every event type with its fields.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Protocol

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from hub.i18n import tr

if TYPE_CHECKING:
    import logging

    from hub.clock import Clock
    from hub.sun import Sun

ID_PATTERN = r"^[a-z0-9_-]+$"
RESERVED_IDS = frozenset({"bridge", "site"})
_ID_RE = re.compile(ID_PATTERN)


def check_id(value: str) -> str:
    """Validate an id: lower-case ``[a-z0-9_-]+`` and not reserved."""
    if not _ID_RE.match(value):
        raise ValueError(tr("{value} is not a valid id: use lower-case letters, digits, '-' and '_'",
                            value=repr(value)))
    if value in RESERVED_IDS:
        raise ValueError(tr("{value} is reserved (reserved ids: {ids})", value=repr(value),
                            ids=", ".join(sorted(RESERVED_IDS))))
    return value


Id = Annotated[str, AfterValidator(check_id)]
"""A validated id (use it in plugin models for keys that name devices or sites)."""


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceConfig(StrictModel):
    """Keys every device entry has. A platform's model subclasses this and adds its own keys.

    Example::

        class RelayConfig(DeviceConfig):
            host: str
            port: int = Field(502, ge=1, le=65535)
    """

    id: Id = Field(description="unique device id, lower-case [a-z0-9_-]+")
    platform: str = Field(description="the plugin platform that drives this device")
    site: str | None = Field(None, description="id of the site (host house / public point) it stands at")
    name: str | None = Field(None, description="human-readable name")
    poll_interval: float = Field(10.0, gt=0, le=86400, description="seconds between polls")
    timeout: float = Field(10.0, gt=0, le=300, description="seconds before a call to the device fails")
    enabled: bool = True



class CameraConfig(DeviceConfig):
    """Keys every camera / recorder platform accepts (image health checks, see docs)."""

    health_interval: float = Field(600, ge=0, le=86400,
                                   description="seconds between image checks; 0 turns them off")
    health_source: Literal["snapshot", "stream"] = Field(
        "snapshot", description="where image checks get frames: a JPEG snapshot (cheap) or RTSP")
    recorder: str | None = Field(None, description="id of the DVR/NVR this camera records to (offline cause)")
    recorder_channel: int | None = Field(None, ge=1, le=512, description="its channel on that recorder")


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What a device says about itself; stored in the registry and published in its state."""

    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    manufacturer: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Command:
    """A validated command on its way to a driver.

    ``payload`` is an instance of the driver's ``command_model``. ``source`` says where it came
    from (``"mqtt"``, ``"rule:<name>"``, ``"cli"``); ``user`` names the officer when the command
    came in on ``<base>/<device>/set/<user>``.
    """

    payload: BaseModel
    source: str = "mqtt"
    user: str | None = None
    reason: str | None = None
    #: the stable code of ``reason`` (a light publishes it as ``reason_code``), e.g. ``night_rule_dark``
    reason_code: str | None = None

    @property
    def by_person(self) -> bool:
        """True when a person (not a rule) sent it."""
        return not self.source.startswith("rule:")


class DeviceError(Exception):
    """The device cannot be reached, refused the credentials, or answered garbage.

    The message is logged and published as the device's offline ``error``: it must never
    contain a password.
    """


class AuthError(DeviceError):
    """The device refused the credentials (retried slowly, never in a tight loop)."""


class ExportUnsupportedError(DeviceError):
    """The device cannot search or download its recordings (e.g. an ONVIF camera without
    Profile G): the export fails with this message instead of an obscure protocol error."""


@dataclass(frozen=True, slots=True)
class Segment:
    """One recording file (or part of one) found by :meth:`Driver.search_recordings`.

    ``start`` and ``end`` are the *recorder's* wall clock, naive (the export turns hub time into
    recorder time with the measured clock skew). ``ref`` is the driver's own handle for
    :meth:`Driver.download` (a playbackURI, a file path); ``name`` is a file name to keep the
    bytes under (no directories), ``container`` what the bytes are (``ps``, ``dav``, ``mp4``).
    """

    channel: int
    start: datetime
    end: datetime
    ref: str
    name: str
    container: str
    size: int | None = None


DownloadSink = Callable[[bytes], Awaitable[None]]
"""Where :meth:`Driver.download` hands each chunk (awaited: it applies back-pressure)."""


class CommandError(Exception):
    """A command that the device cannot carry out; becomes a ``command_rejected`` event."""


@dataclass(frozen=True, slots=True)
class Entity:
    """One Home Assistant entity of a device, announced by MQTT discovery.

    ``field`` is the key in the device's state JSON. ``component`` is a Home Assistant MQTT
    component (``sensor``, ``binary_sensor``, ``switch``, ``light``). A ``light`` is announced with
    the JSON schema, which reads the field ``state`` (``ON``/``OFF``). ``device_class`` and ``unit``
    must be a pair Home Assistant accepts (tests/ha_rules.py has its tables).
    """

    component: Literal["sensor", "binary_sensor", "switch", "light"]
    field: str
    name: str
    device_class: str | None = None
    unit: str | None = None
    command: bool = False
    payload_on: Any = None
    payload_off: Any = None
    state_class: str | None = None
    icon: str | None = None


class MqttAccess(Protocol):
    """What a driver may do on the hub's MQTT connection (e.g. Tasmota relays)."""

    def publish(self, topic: str, payload: str | bytes, qos: int = 1, retain: bool = False) -> None: ...

    def subscribe(self, topic: str, callback: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Subscribe; the callback runs in the event loop. Returns an unsubscribe function."""
        ...


class DeviceContext(Protocol):
    """What the hub hands a driver: its identity, the clock, and ways to report."""

    device_id: str
    site: str | None
    clock: Clock

    @property
    def tz(self) -> tzinfo:
        """The hub's timezone (``hub.timezone``), for local times in state and reasons."""

    log: logging.Logger
    sun: Sun | None

    @property
    def mqtt(self) -> MqttAccess:
        """The hub's MQTT connection (read-only)."""

    def update(self, fields: Mapping[str, Any]) -> None:
        """Merge fields into the device's state (push path; same as returning them from poll)."""

    def event(self, type: str, **data: Any) -> None:
        """Emit an event on ``<base>/bridge/event`` (device and site are filled in)."""

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> Any:
        """Start a task owned by the device; cancelled when the device stops or reconnects."""

    def state(self, device_id: str | None = None) -> Mapping[str, Any]:
        """Last known state of this device (or another one)."""

    def remember(self, key: str, value: Any) -> None:
        """Keep a small JSON-able value across hub restarts (``None`` forgets it). Written
        atomically with the registry within seconds, and at shutdown."""

    def recall(self, key: str) -> Any:
        """A value kept with :meth:`remember`, or ``None``."""


class Driver:
    """Base class of device drivers. Override what the device supports.

    Example (a complete, if trivial, driver)::

        class Echo(Driver):
            command_model = EchoCommand           # a pydantic model with extra="forbid"

            async def poll(self):
                return {"value": 42}

            async def handle_command(self, command):
                return {"value": command.payload.value}
    """

    command_model: ClassVar[type[BaseModel] | None] = None
    """Pydantic model that validates commands; ``None`` means the device takes no commands."""

    kind: str = "device"
    """What the device is: ``ups``, ``meter``, ``light``, ``camera``, ``recorder``, ``device``. A class
    attribute; a driver whose kind follows its config (a Hikvision camera or recorder) sets it per instance."""

    def __init__(self, config: DeviceConfig, ctx: DeviceContext) -> None:
        self.config = config
        self.ctx = ctx

    async def connect(self) -> DeviceInfo | None:
        """Open connections and identify the device. Raise :class:`DeviceError` on failure."""
        return None

    async def poll(self) -> Mapping[str, Any] | None:
        """Read the device and return state fields (``None``: nothing new). Raise on failure."""
        return None

    async def listen(self) -> None:
        """Long-running push source (event stream). Only run if a subclass overrides it.

        Returning or raising ends it; the hub restarts it after the device's next successful
        poll (raising also marks the device offline).
        """
        raise NotImplementedError

    async def handle_command(self, command: Command) -> Mapping[str, Any] | None:
        """Carry out a validated command and return the state read back from the device."""
        raise CommandError("this device takes no commands")

    async def snapshot(self, channel: int | None = None) -> bytes:
        """Return one JPEG picture (cameras). Raise :class:`DeviceError` when not possible."""
        raise DeviceError("this device has no snapshots")

    def stream_url(self, channel: int | None = None) -> str | None:
        """RTSP URL of the main stream (credentials included), or ``None``."""
        return None

    async def search_recordings(self, channel: int, start: datetime, end: datetime) -> list[Segment]:
        """Recording files of ``channel`` overlapping ``start``..``end`` (the recorder's wall
        clock, naive), oldest first; ``[]`` when nothing was recorded then. Recorders override this
        and :meth:`download` to take part in ``anninh export``.

        Raise :class:`ExportUnsupportedError` when the device cannot export, :class:`AuthError` or
        :class:`DeviceError` as usual."""
        raise ExportUnsupportedError("this device cannot export recordings (its driver has no recording search)")

    async def download(self, segment: Segment, sink: DownloadSink, offset: int = 0) -> int:
        """Stream ``segment``'s bytes, exactly as the recorder sends them, to ``sink`` chunk by
        chunk (never the whole file in memory), starting ``offset`` bytes in (to resume a broken
        download: by an HTTP Range request, or by skipping what was already received). Returns
        the bytes handed to ``sink``. A dropped connection raises :class:`DeviceError`; the caller
        resumes from where it stopped."""
        raise ExportUnsupportedError("this device cannot export recordings (its driver has no download)")

    async def recorder_clock_skew(self) -> float | None:
        """Seconds the recorder's clock is ahead of the real time (negative: behind), or ``None``
        when unknown. The export adds it to the requested times and records it."""
        return None

    def entities(self) -> list[Entity]:
        """Home Assistant entities of this device (MQTT discovery)."""
        return []

    async def close(self) -> None:
        """Release connections. Called on shutdown and before each reconnect."""


@dataclass(frozen=True)
class PlatformSpec:
    """A device platform, returned by the ``anninh_platforms`` hook.

    Example::

        PlatformSpec(name="ups_modbus", config_model=UpsConfig, driver=UpsDriver,
                     description="UPS units and power meters over Modbus")
    """

    name: str
    config_model: type[DeviceConfig]
    driver: type[Driver] | Callable[[DeviceConfig, DeviceContext], Driver]
    description: str = ""
    simulator: Callable[..., Awaitable[Any]] | None = None


class LazyPlatformSpec(PlatformSpec):
    """A :class:`PlatformSpec` whose config model and driver are imported from ``module`` on first
    use: a plugin whose driver needs heavy libraries (an HTTP client, SOAP, OpenCV) costs a hub
    that has none of its devices nothing. ``config_model`` and ``driver`` name attributes of
    ``module``.

    Example::

        LazyPlatformSpec(name="hikvision", module="plugins.hikvision.driver",
                         config_model="HikvisionConfig", driver="HikvisionDriver")
    """

    def __init__(self, name: str, module: str, config_model: str, driver: str, description: str = "",
                 simulator: Callable[..., Awaitable[Any]] | None = None) -> None:
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "description", description)
        object.__setattr__(self, "simulator", simulator)
        object.__setattr__(self, "_target", (module, config_model, driver))

    def _load(self, index: int) -> Any:
        import importlib

        target: tuple[str, str, str] = self.__dict__["_target"]
        return getattr(importlib.import_module(target[0]), target[index])

    @property
    def config_model(self) -> type[DeviceConfig]:
        return self._load(1)

    @property
    def driver(self) -> type[Driver] | Callable[[DeviceConfig, DeviceContext], Driver]:
        return self._load(2)

    def __repr__(self) -> str:
        return f"LazyPlatformSpec(name={self.name!r}, module={self.__dict__['_target'][0]!r})"


class RuleContext(Protocol):
    """What the hub hands a rule."""

    clock: Clock
    sun: Sun | None
    log: logging.Logger
    config: Any  # hub.config.Config

    @property
    def tz(self) -> tzinfo:
        """The hub's timezone (``hub.timezone``): times a person reads are shown in it."""

    def state(self, device_id: str) -> Mapping[str, Any]: ...

    def available(self, device_id: str) -> bool | None: ...

    def device_kind(self, device_id: str) -> str: ...

    async def command(self, device_id: str, payload: Mapping[str, Any], *, reason: str | None = None,
                      reason_code: str | None = None) -> None:
        """Send a command to a device as this rule (validated like any other); ``reason``: the sentence
        (in the hub's language), ``reason_code``: its stable code."""

    def event(self, type: str, **data: Any) -> None: ...

    def set_site_state(self, site_id: str, fields: Mapping[str, Any]) -> None: ...

    def site_state(self, site_id: str) -> Mapping[str, Any]: ...

    def create_task(self, coro: Coroutine[Any, Any, Any], name: str | None = None) -> Any: ...

    def devices(self, kind: str | None = None) -> list[DeviceConfig]:
        """Configs of the running devices (of one ``Driver.kind`` if given)."""
        ...

    def update_device(self, device_id: str, fields: Mapping[str, Any]) -> None:
        """Merge fields into a device's state (e.g. image-health results into a camera's)."""

    async def snapshot(self, device_id: str, channel: int | None = None) -> bytes:
        """A JPEG from the device's driver (raises :class:`DeviceError`)."""
        ...

    def stream_url(self, device_id: str, channel: int | None = None) -> str | None: ...

    def register_request(self, name: str, handler: Callable[[dict[str, Any]], Awaitable[Any]]) -> None:
        """Answer MQTT requests on ``<base>/bridge/request/<name>`` (response on
        ``<base>/bridge/response/<name>``, Zigbee2MQTT style)."""


@dataclass(slots=True)  # not frozen: frozen dataclasses cost ~1 µs per instance on the hot path
class StateChange:
    """A device's state changed: ``changed`` holds the fields whose values differ."""

    device_id: str
    site: str | None
    state: Mapping[str, Any]
    changed: Mapping[str, Any]
    time: datetime


@dataclass(frozen=True, slots=True)
class AvailabilityChange:
    device_id: str
    site: str | None
    available: bool
    error: str | None
    time: datetime
    error_kind: str | None = None
    """``"auth"`` when the device answered and refused the credentials (:class:`AuthError`): it is
    reachable and powered, so its going offline says nothing about its site's network or power."""


@dataclass(frozen=True, slots=True)
class HubEvent:
    """An event as published on ``<base>/bridge/event``."""

    type: str
    time: datetime
    device: str | None = None
    site: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "time": self.time.isoformat()}
        if self.device is not None:
            out["device"] = self.device
        if self.site is not None:
            out["site"] = self.site
        for k, v in self.data.items():
            out.setdefault(k, v)
        return out


class Rule:
    """Base class of rules. A rule reacts to state changes, availability changes and events,
    and may run its own periodic task from :meth:`start`.

    Example::

        class LogPowerCuts(Rule):
            name = "log_power_cuts"

            def on_event(self, event):
                if event.type == "power_lost":
                    self.ctx.log.warning("power lost at %s", event.site)
    """

    name: ClassVar[str] = "rule"
    options_model: ClassVar[type[StrictModel] | None] = None
    """Model of ``rules.<name>`` options in the config (``enabled`` is always accepted)."""

    def __init__(self, ctx: RuleContext, options: StrictModel | None) -> None:
        self.ctx = ctx
        self.options = options

    async def start(self) -> None:
        """Called once the devices have started; evaluate the initial state here."""

    async def stop(self) -> None:
        """Called on shutdown."""

    def on_state(self, change: StateChange) -> None:
        """A device's state changed."""

    def on_availability(self, change: AvailabilityChange) -> None:
        """A device went online or offline."""

    def on_event(self, event: HubEvent) -> None:
        """An event was emitted (by a device or another rule)."""


@dataclass(frozen=True)
class RuleSpec:
    """A rule, returned by the ``anninh_rules`` hook.

    Example::

        RuleSpec(name="night_light", factory=NightLightRule, default_enabled=True)
    """

    name: str
    factory: Callable[[RuleContext, StrictModel | None], Rule]
    options_model: type[StrictModel] | None = None
    default_enabled: bool = True
    description: str = ""


# hook specs for CLI commands, discovery and simulators (no imports back into hub.api)
from hub.api.extend import (  # noqa: E402, F401
    CliContext,
    CommandSpec,
    DiscoveryRequest,
    DiscoveryResult,
    DiscoverySpec,
    SimulatorFactory,
)
