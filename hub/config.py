"""Configuration: YAML with ``!secret``, validated by pydantic models, every error located.

Each error names the file, the line and the field, and says what was expected::

    config.yaml:14: devices[1].port: Input should be less than or equal to 65535 (got 70000)

Plugin sections (a device's keys, a rule's options) are validated by the plugin's own model.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.api import DeviceConfig, Id, StrictModel
from hub.i18n import N_, _, tr, use_language

SECRETS_FILE = "secrets.yaml"


# ------------------------------------------------------------------ YAML with line numbers
class LineDict(dict):
    """A mapping that remembers the line (1-based) of itself and of each key."""

    line: int = 0
    key_lines: dict[Any, int]


class LineList(list):
    line: int = 0
    item_lines: list[int]


class SecretRef(str):
    """A value read through ``!secret NAME``; ``repr`` never shows it."""

    secret_name: str = ""

    def __repr__(self) -> str:
        return f"<secret {self.secret_name}>"


@dataclass
class ConfigIssue:
    file: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else f"{self.file}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ConfigError(Exception):
    """One or more problems in the configuration; ``str()`` lists them, one per line.

    ``secrets`` maps secret values read through ``!secret`` to their names: a misplaced secret
    (say ``id: !secret x``) is shown as ``<secret x>``, never as its value."""

    def __init__(self, issues: list[ConfigIssue], secrets: dict[str, str] | None = None) -> None:
        if secrets:
            for issue in issues:
                for value in sorted(secrets, key=len, reverse=True):
                    tag = f"<secret {secrets[value]}>"
                    issue.field = issue.field.replace(value, tag)
                    issue.message = issue.message.replace(value, tag)
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


def _make_loader(path: Path, issues: list[ConfigIssue], secrets: dict[str, Any] | None,
                 resolved: dict[str, str] | None = None) -> type:
    class Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LineDict:
        loader.flatten_mapping(node)
        out = LineDict()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                issues.append(ConfigIssue(path, key_node.start_mark.line + 1, "",
                                          tr("mapping key must be a plain value, got {key}", key=repr(key))))
                continue
            if key in out:
                issues.append(ConfigIssue(path, key_node.start_mark.line + 1, str(key),
                                          tr("duplicate key (first on line {line})", line=out.key_lines[key])))
            out[key] = loader.construct_object(value_node, deep=True)
            out.key_lines[key] = key_node.start_mark.line + 1
        return out

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LineList:
        out = LineList(loader.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out

    def construct_secret(loader: yaml.SafeLoader, node: yaml.Node) -> SecretRef:
        line = node.start_mark.line + 1
        name = loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else ""
        value = SecretRef("")
        value.secret_name = str(name)
        if not name:
            issues.append(ConfigIssue(path, line, "", _("!secret needs a name, e.g. !secret cam_password")))
        elif secrets is None:
            issues.append(ConfigIssue(path, line, "", tr("!secret {name}: no {file} beside {config} (expected "
                                                         "{expected})", name=name, file=SECRETS_FILE,
                                                         config=path.name, expected=path.parent / SECRETS_FILE)))
        elif name not in secrets:
            issues.append(ConfigIssue(path, line, "", tr("!secret {name}: not defined in {file}", name=name,
                                                         file=path.parent / SECRETS_FILE)))
        else:
            value = SecretRef(str(secrets[name]))
            value.secret_name = str(name)
            if resolved is not None and value:
                resolved[str(value)] = str(name)
        return value

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    Loader.add_constructor("!secret", construct_secret)
    return Loader


def load_yaml(path: Path, issues: list[ConfigIssue], secrets: dict[str, Any] | None = None,
              resolved: dict[str, str] | None = None) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        issues.append(ConfigIssue(path, None, "", tr("cannot read: {error}", error=exc.strerror or exc)))
        return None
    except UnicodeDecodeError as exc:
        issues.append(ConfigIssue(path, None, "", tr("not UTF-8 text: {error}", error=exc.reason)))
        return None
    try:
        return yaml.load(text, Loader=_make_loader(path, issues, secrets, resolved))
    except RecursionError:
        issues.append(ConfigIssue(path, None, "", _("invalid YAML: nested too deeply")))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        message = tr("invalid YAML: {problem}", problem=exc.problem or exc.context)
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            message += " " + tr("({context} that started on line {line})", context=exc.context,
                                line=exc.context_mark.line + 1)
        issues.append(ConfigIssue(path, line, "", message))
    except yaml.YAMLError as exc:
        issues.append(ConfigIssue(path, None, "", tr("invalid YAML: {problem}", problem=exc)))
    return None


def _load_secrets(config_path: Path, issues: list[ConfigIssue]) -> dict[str, Any] | None:
    path = config_path.parent / SECRETS_FILE
    if not path.is_file():
        return None
    loaded = load_yaml(path, issues, secrets={})
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        issues.append(ConfigIssue(path, 1, "", _("secrets file must be a mapping of NAME: value")))
        return {}
    return dict(loaded)


# ------------------------------------------------------------------ the models
class HubSection(StrictModel):
    name: str = Field("AnNinh Hub", description="shown in `<base>/bridge/info`")
    latitude: float | None = Field(None, ge=-90, le=90,
                                   description="the post's location: sun elevation for the night-light rule")
    longitude: float | None = Field(None, ge=-180, le=180, description="see `hub.latitude`")
    timezone: str = Field("Asia/Ho_Chi_Minh", description="local times in events and reasons")
    language: str = Field("vi", description="language of what people read (event messages, lights' reasons, "
                                            "command output): `vi` (Vietnamese) or `en` (English)")
    data_dir: str = Field("./data", description="registry (`registry.json`), history (`history.db`), reference "
                                                "images, drop-in plugins")
    history_days: int = Field(400, ge=1, le=3650, description="days of history kept (monthly and yearly reports)")
    history_max_mb: float = Field(2000, ge=1, le=1_000_000,
                                  description="size budget of `history.db` in MB: past it the oldest states "
                                              "and events are deleted (the command audit is kept)")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(tr("unknown timezone {value} (expected an IANA name such as Asia/Ho_Chi_Minh)",
                                value=repr(value))) from None
        return value

    @field_validator("language")
    @classmethod
    def _language(cls, value: str) -> str:
        from hub.i18n import normalize

        return normalize(value)

    @model_validator(mode="after")
    def _both_or_none(self) -> HubSection:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError(_("give both latitude and longitude, or neither"))
        return self


class MqttSection(StrictModel):
    server: str = Field("embedded", description="`mqtt://host:1883`, `mqtts://host:8883`, or `embedded`: the hub "
                        "runs Mosquitto itself with the config's users and ACL (files and persistence in "
                        "`<data_dir>/mosquitto/`); without Mosquitto, a Python broker on loopback only and without "
                        "users (docs/security.md)")
    username: str | None = Field(None, description="the hub's own MQTT account (with `embedded`, a generated "
                                 "internal account when unset)")
    password: SecretStr | None = Field(None, description="its password")
    base_topic: str = Field("anninh", description="`<base>` in the topics below")
    discovery: bool = Field(True, description="Home Assistant MQTT discovery")
    discovery_prefix: str = Field("homeassistant", description="Home Assistant's discovery prefix")
    client_id: str | None = Field(None, description="default: derived from the data dir. The session is "
                                  "persistent: commands the broker took while the hub was down or dying are "
                                  "delivered after its restart; a fixed id that a user (or, without users, any "
                                  "local program) could take is refused")
    keepalive: int = Field(30, ge=5, le=3600, description="MQTT keepalive (seconds)")
    ca_file: str | None = Field(None, description="TLS: CA to trust")
    cert_file: str | None = Field(None, description="TLS: client certificate")
    key_file: str | None = Field(None, description="TLS: the client certificate's key")
    queue_size: int = Field(10000, ge=10, le=1_000_000,
                            description="events kept while the broker is unreachable, in `outbox.db` in the data "
                                        "dir (they survive a hub restart; oldest dropped first, and counted)")
    embedded_bind: str = Field("127.0.0.1", description="address the embedded broker listens on")
    embedded_port: int = Field(1883, ge=0, le=65535, description="port the embedded broker listens on (beyond "
                               "loopback only with Mosquitto and `users:`)")

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        if value == "embedded":
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(tr("{value}: expected 'embedded', mqtt://HOST:PORT or mqtts://HOST:PORT",
                                value=repr(value)))
        try:
            parts.port  # noqa: B018 (validates the port)
        except ValueError:
            raise ValueError(tr("{value}: bad port", value=repr(value))) from None
        return value

    @field_validator("base_topic", "discovery_prefix")
    @classmethod
    def _topic(cls, value: str) -> str:
        if not value or any(c in value for c in "#+\0") or value.startswith("/") or value.endswith("/"):
            raise ValueError(tr("{value} is not a usable topic prefix (no wildcards, no leading or trailing '/')",
                                value=repr(value)))
        return value


class SiteConfig(StrictModel):
    id: Id
    name: str | None = None
    blackspot: bool = Field(False, description="lights there follow the night rule")
    latitude: float | None = Field(None, ge=-90, le=90, description="the site on the web console's map")
    longitude: float | None = Field(None, ge=-180, le=180, description="see `latitude`")

    @model_validator(mode="after")
    def _both_or_none(self) -> SiteConfig:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("give both latitude and longitude, or neither")
        return self


class UserConfig(StrictModel):
    name: Id
    role: Literal["officer", "contractor", "installer", "viewer"]
    password: SecretStr
    sites: list[str] | None = None


class ExportSection(StrictModel):
    max_hours: float = Field(12, gt=0, le=168, description="longest window `anninh export` accepts (hours)")
    audio: Literal["aac", "drop"] = Field("aac", description="recorder audio (G.711) in the MP4: as AAC, or left "
                                          "out (faster; it stays in original/)")


class WebSection(StrictModel):
    bind: str = Field("127.0.0.1", description="address the web console listens on (beyond loopback: give it "
                      "a certificate, or the hub warns)")
    port: int = Field(8080, ge=0, le=65535, description="its port (0: a free one, printed at start)")
    cert_file: str | None = Field(None, description="TLS: the console's certificate (PEM), with `web.key_file`")
    key_file: str | None = Field(None, description="TLS: its private key (PEM)")
    enabled: bool = Field(True, description="`false`: no web console")
    tile_url: str | None = Field(None, description="map tiles for the overview, e.g. a tile server on the post's "
                                 "network `http://10.0.0.5/tiles/{z}/{x}/{y}.png`; none: markers on a plain "
                                 "background (no internet needed)")
    session_hours: float = Field(12, gt=0, le=720, description="a sign-in lasts this long")

    @model_validator(mode="after")
    def _pair(self) -> WebSection:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("give both cert_file and key_file, or neither")
        return self


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}


def parse_duration(value: Any) -> float:
    """``90s``, ``30m``, ``48h`` or a number of seconds -> seconds (ValueError: a bad duration)."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r}: write 90s, 30m, 48h or a number of seconds")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        m = _DURATION.match(str(value))
        if m is None:
            raise ValueError(f"bad duration {value!r}: write 90s, 30m, 48h or a number of seconds")
        seconds = float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    if seconds <= 0:
        raise ValueError(f"bad duration {value!r}: it must be more than 0")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds, written ``90s``, ``30m``, ``48h`` or as a number of seconds."""


class DeadlinesConfig(StrictModel):
    """Hours (a duration) a contractor has to repair a device of each kind."""

    camera: Duration = Field("48h", validate_default=True, description="camera deadline")
    recorder: Duration = Field("24h", validate_default=True, description="recorder deadline")
    ups: Duration = Field("72h", validate_default=True, description="UPS deadline")
    light: Duration = Field("72h", validate_default=True, description="light deadline")


class ContractorConfig(StrictModel):
    name: Id = Field(description="the user (role `contractor`) who acts for this contractor")
    phone: str | None = Field(None, description="phone number")
    contact: str | None = Field(None, description="who to call, address")
    sites: list[str] | None = Field(None, description="the sites under contract (the user's `sites` too: give "
                                    "them here or there, not differently in both; none: every site)")
    deadlines: DeadlinesConfig = Field(DeadlinesConfig(), description="repair deadline per kind "
                                       "(`camera`, `recorder`, `ups`, `light`; default 48h, 24h, 72h, 72h)")


class TicketsSection(StrictModel):
    open_after: Duration = Field("30m", validate_default=True,
                                 description="a fault lasting this long opens a maintenance ticket "
                                             "(`90s`, `30m`, `48h` or seconds)")
    close_after: Duration = Field("10m", validate_default=True,
                                  description="a fault gone this long closes its ticket as recovered")


class _TopModel(StrictModel):
    hub: HubSection = HubSection()
    mqtt: MqttSection = MqttSection()
    export: ExportSection = ExportSection()
    web: WebSection = WebSection()
    sites: list[SiteConfig] = []
    devices: list[dict[str, Any]] = []
    users: list[UserConfig] = []
    rules: dict[str, dict[str, Any] | None] = {}
    contractors: list[ContractorConfig] = []
    tickets: TicketsSection = TicketsSection()


@dataclass
class Config:
    """A validated configuration."""

    path: Path
    hub: HubSection
    mqtt: MqttSection
    sites: list[SiteConfig]
    devices: list[DeviceConfig]
    users: list[UserConfig]
    rules: dict[str, StrictModel | None]
    rules_enabled: dict[str, bool]
    warnings: list[str] = field(default_factory=list)
    export: ExportSection = field(default_factory=ExportSection)
    web: WebSection = field(default_factory=WebSection)
    contractors: list[ContractorConfig] = field(default_factory=list)
    tickets: TicketsSection = field(default_factory=TicketsSection)

    @property
    def data_dir(self) -> Path:
        p = Path(self.hub.data_dir)
        return p if p.is_absolute() else (self.path.parent / p).resolve()

    def site(self, site_id: str | None) -> SiteConfig | None:
        return next((s for s in self.sites if s.id == site_id), None)

    def device(self, device_id: str) -> DeviceConfig | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def user(self, name: str | None) -> UserConfig | None:
        return next((u for u in self.users if u.name == name), None)

    def contractor_for(self, site: str | None) -> ContractorConfig | None:
        """The first contractor (in config order) whose sites hold ``site`` (one without sites holds all)."""
        return next((c for c in self.contractors if c.sites is None or site in c.sites), None)

    def secrets(self) -> list[str]:
        """Every password in the config (for tests and log redaction)."""
        out = [d for d in _walk_secrets(self.devices)]
        out += [u.password.get_secret_value() for u in self.users]
        if self.mqtt.password:
            out.append(self.mqtt.password.get_secret_value())
        return [s for s in out if s]


def _walk_secrets(devices: list[DeviceConfig]) -> list[str]:
    out: list[str] = []
    for d in devices:
        for name in type(d).model_fields:
            value = getattr(d, name)
            if isinstance(value, SecretStr):
                out.append(value.get_secret_value())
    return out


# ------------------------------------------------------------------ locating errors
def _line_of(raw: Any, loc: tuple[Any, ...]) -> int | None:
    line = getattr(raw, "line", None)
    node = raw
    for step in loc:
        if isinstance(node, LineDict) and step in node:
            line = node.key_lines.get(step, line)
            node = node[step]
        elif isinstance(node, LineList) and isinstance(step, int) and 0 <= step < len(node):
            line = node.item_lines[step]
            node = node[step]
        else:
            break
    return line


def _field_name(loc: tuple[Any, ...]) -> str:
    out = ""
    for step in loc:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out


def _describe(err: Mapping[str, Any], model: type[BaseModel] | None, loc: tuple[Any, ...]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc)
        key = str(loc[-1]) if loc else "?"
        if allowed:
            close = difflib.get_close_matches(key, allowed, n=1)
            return unknown_key(close[0] if close else None, allowed)
        return _("unknown key")
    if kind == "missing":
        return _("required key is missing")
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    msg = _pydantic_in_language(kind, msg, err.get("ctx") or {})
    if "input" in err and kind not in ("model_type", "dict_type", "list_type") and not isinstance(
            err["input"], (dict, list, SecretRef)):
        msg += " " + tr("(got {value})", value=repr(err["input"]))
    return msg


#: pydantic's sentences for the errors a config most often has, as templates to translate
_PYDANTIC_MESSAGES: dict[str, str] = {
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_type": N_("Input should be a valid integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "float_type": N_("Input should be a valid number"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "bool_type": N_("Input should be a valid boolean"),
    "string_type": N_("Input should be a valid string"),
    "list_type": N_("Input should be a valid list"),
    "dict_type": N_("Input should be a valid dictionary"),
    "literal_error": N_("Input should be {expected}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "less_than": N_("Input should be less than {lt}"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "greater_than": N_("Input should be greater than {gt}"),
}


def _pydantic_in_language(kind: str, msg: str, ctx: Mapping[str, Any]) -> str:
    """pydantic's own sentence in the current language, when it is one of :data:`_PYDANTIC_MESSAGES`
    worded as that pydantic version words it (otherwise pydantic's English stays)."""
    template = _PYDANTIC_MESSAGES.get(kind)
    if template is None:
        return msg
    params = {k: str(v) for k, v in ctx.items()}
    with use_language("en"):
        if tr(template, **params) != msg:
            return msg
    return tr(template, **params)


def _allowed_keys(model: type[BaseModel] | None, loc: tuple[Any, ...]) -> list[str]:
    """Keys the model accepts at the parent of ``loc`` (for "did you mean" hints)."""
    current: Any = model
    for step in loc[:-1]:
        if isinstance(step, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        f = current.model_fields.get(str(step))
        if f is None:
            return []
        current = _inner_model(f.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return sorted(current.model_fields)
    return []


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _add_validation_issues(issues: list[ConfigIssue], path: Path, raw: Any, exc: ValidationError,
                           model: type[BaseModel], prefix: tuple[Any, ...] = (),
                           skip: tuple[tuple[Any, ...], ...] = ()) -> None:
    for err in exc.errors():
        loc = tuple(err["loc"])
        if loc in skip:
            continue  # already reported, more precisely
        full = prefix + loc
        issues.append(ConfigIssue(path, _line_of(raw, full), _field_name(full) or "(top level)",
                                  _describe(err, model, loc)))


_HOST_LABEL = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


def host_problem(value: Any) -> str | None:
    """What is wrong with a device's ``host:`` (an IP address or a host name, nothing else), or
    None. Applied to every platform's ``host`` key, so a typo fails ``anninh check``, not the
    first connect."""
    if not isinstance(value, str) or not value.strip():
        return None  # the platform's model says what it expects
    text = value.strip()
    example = "host: 192.168.1.64"
    if "://" in text:
        return tr("{value}: give only the address, without a scheme such as http:// (e.g. {example})",
                  value=repr(value), example=example)
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d+)", text)
    if bracketed:
        return tr("{value}: the port goes in 'port:' (host: {host}, port: {port})", value=repr(value),
                  host=bracketed.group(1), port=bracketed.group(2))
    if text.count(":") == 1:
        name, _sep, port = text.partition(":")
        if port.isdigit():
            return tr("{value}: the port goes in 'port:' (host: {host}, port: {port})", value=repr(value),
                      host=name, port=port)
        return tr("{value} is not a valid address (e.g. {example})", value=repr(value), example=example)
    if any(c in text for c in "/@ \t"):
        return tr("{value}: give only the address, without a path, user or spaces (e.g. {example})",
                  value=repr(value), example=example)
    if ":" in text:
        try:
            ipaddress.IPv6Address(text.strip("[]"))
        except ValueError:
            return tr("{value} is not a valid IPv6 address", value=repr(value))
        return None
    if re.fullmatch(r"[0-9.]+", text):
        try:
            ipaddress.IPv4Address(text)
        except ValueError:
            return tr("{value} is not a valid IPv4 address (four numbers 0-255 separated by dots)",
                      value=repr(value))
        return None
    name = text.removesuffix(".")
    if len(name) > 253 or not all(_HOST_LABEL.match(label) for label in name.split(".")):
        return tr("{value} is not a valid host name or IP address (e.g. {example})", value=repr(value),
                  example=example)
    return None


# ------------------------------------------------------------------ one checker per section
@dataclass
class _Check:
    """What every section checker shares: the file, its raw YAML (for line numbers), and the
    issues and warnings found so far (in file order of the sections, as before the split)."""

    path: Path
    raw: Any
    issues: list[ConfigIssue] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def add(self, loc: tuple[Any, ...], where: str, message: str) -> None:
        self.issues.append(ConfigIssue(self.path, _line_of(self.raw, loc), where, message))


def _check_permissions(path: Path) -> list[str]:
    """A config or secrets file other users can read leaks the passwords: warn, do not refuse."""
    warnings: list[str] = []
    for p in (path, path.parent / SECRETS_FILE):
        try:
            if p.is_file() and os.stat(p).st_mode & stat.S_IROTH:
                warnings.append(f"{p} is readable by every user on this machine; "
                                f"run: chmod o-r {p}")
        except OSError:
            pass
    return warnings


def unknown_key(close: str | None, allowed: Any) -> str:
    """"unknown key; did you mean 'x'?" or "unknown key; expected one of: a, b"."""
    if close is not None:
        return tr("unknown key; did you mean {key}?", key=repr(close))
    return tr("unknown key; expected one of: {keys}", keys=", ".join(allowed))


def _check_sections(ck: _Check) -> _TopModel:
    """Unknown top-level keys (with a did-you-mean), then each section's model on its own, so one
    bad section does not hide the others' errors."""
    raw = ck.raw
    values: dict[str, Any] = {}
    for key in raw:
        if key not in _TopModel.model_fields:
            close = difflib.get_close_matches(str(key), list(_TopModel.model_fields), n=1)
            ck.add((key,), str(key), unknown_key(close[0] if close else None, _TopModel.model_fields))
    for name, info in _TopModel.model_fields.items():
        if name not in raw or raw[name] is None:
            continue
        try:
            values[name] = TypeAdapter(info.annotation or Any).validate_python(raw[name])
        except ValidationError as exc:
            _add_validation_issues(ck.issues, ck.path, raw, exc, _inner_model(info.annotation) or _TopModel,
                                   prefix=(name,))
    return _TopModel(**values)


def _check_sites(ck: _Check, sites: list[SiteConfig]) -> dict[str, int]:
    """Unique site ids; returns each id's index."""
    site_ids: dict[str, int] = {}
    for i, site in enumerate(sites):
        if site.id in site_ids:
            ck.add(("sites", i, "id"), f"sites[{i}].id",
                   tr("duplicate site id {id} (also sites[{index}])", id=repr(site.id), index=site_ids[site.id]))
        site_ids.setdefault(site.id, i)
    return site_ids


def _check_devices(ck: _Check, entries: list[dict[str, Any]], platforms: dict[str, Any],
                   site_ids: dict[str, int]) -> list[DeviceConfig]:
    """Each device through its platform's model; unique ids; existing sites."""
    devices: list[DeviceConfig] = []
    device_ids: dict[str, int] = {}
    for i, entry in enumerate(entries):
        dev = _check_device(ck, i, entry, platforms)
        if dev is None:
            continue
        loc = ("devices", i)
        if dev.id in device_ids:
            ck.add((*loc, "id"), f"devices[{i}].id",
                   tr("duplicate device id {id} (also devices[{index}])", id=repr(dev.id),
                      index=device_ids[dev.id]))
            continue
        # a device may share a site's id: they live in different topic trees
        device_ids[dev.id] = i
        if dev.site is not None and dev.site not in site_ids:
            ck.add((*loc, "site"), f"devices[{i}].site",
                   tr("unknown site {site} (defined sites: {sites})", site=repr(dev.site),
                      sites=", ".join(site_ids) or _("none")))
            continue
        devices.append(dev)
    return devices


def _check_device(ck: _Check, i: int, entry: dict[str, Any], platforms: dict[str, Any]) -> DeviceConfig | None:
    """One device entry: its platform (known, loadable), its host, its platform's model."""
    loc = ("devices", i)
    platform = entry.get("platform")
    if platform is None:
        typo = next((k for k in entry if isinstance(k, str) and k != "platform"
                     and difflib.get_close_matches(k, ["platform"], n=1, cutoff=0.75)), None)
        if typo is not None:
            ck.add((*loc, typo), f"devices[{i}].{typo}", unknown_key("platform", ()))
        else:
            ck.add(loc, f"devices[{i}].platform", _("required key is missing"))
        return None
    spec = platforms.get(platform) if isinstance(platform, str) else None
    if spec is None:
        known = ", ".join(sorted(platforms)) or _("none loaded")
        ck.add((*loc, "platform"), f"devices[{i}].platform",
               tr("unknown platform {platform} (available: {known})", platform=repr(platform), known=known))
        return None
    try:
        model = spec.config_model  # a LazyPlatformSpec imports its driver module here
    except Exception as exc:
        ck.add((*loc, "platform"), f"devices[{i}].platform",
               tr("platform {platform} could not be loaded: {error}", platform=repr(platform),
                  error=type(exc).__name__ + ": " + str(exc)))
        return None
    bad_host = host_problem(entry.get("host"))
    if bad_host is not None:
        ck.add((*loc, "host"), f"devices[{i}].host", bad_host)
    try:
        dev = model.model_validate(entry)
    except ValidationError as exc:
        _add_validation_issues(ck.issues, ck.path, ck.raw, exc, model, prefix=loc,
                               skip=(("host",),) if bad_host else ())
        return None
    return None if bad_host is not None else dev


def _check_users(ck: _Check, users: list[UserConfig], site_ids: dict[str, int]) -> set[str]:
    """Unique user names, known sites; returns the names."""
    user_names: set[str] = set()
    for i, user in enumerate(users):
        if user.name in user_names:
            ck.add(("users", i, "name"), f"users[{i}].name", tr("duplicate user {user}", user=repr(user.name)))
        user_names.add(user.name)
        for j, s in enumerate(user.sites or []):
            if s not in site_ids:
                ck.add(("users", i, "sites", j), f"users[{i}].sites[{j}]", tr("unknown site {site}", site=repr(s)))
    return user_names


def _check_client_id(ck: _Check, mqtt: MqttSection, user_names: set[str]) -> None:
    """mqtt.client_id: a fixed id another client could take would knock the hub off (a false
    "hub offline" last will each time): refuse the ids the broker does not keep for the hub."""
    cid = mqtt.client_id
    if cid is None:
        return
    loc = ("mqtt", "client_id")
    if cid in user_names:
        ck.add(loc, "mqtt.client_id", tr("{id} is the name of a user, whose session would take the hub's (the "
                                         "broker binds each user's client id to the user name); leave client_id "
                                         "unset for a random id", id=repr(cid)))
    elif not user_names and mqtt.server == "embedded":
        ck.add(loc, "mqtt.client_id", _("a fixed client id on the embedded broker without users: any local program "
                                        "could connect with it and knock the hub off; leave client_id unset (a "
                                        "random id), or define users: so the broker binds the hub's session to its "
                                        "login"))
    elif user_names and mqtt.server != "embedded":
        ck.warnings.append(f"{ck.path}: mqtt.client_id {cid!r} is fixed: unless the broker binds client ids to "
                           "logins (`anninh acl --bind-client-ids`), any user can connect with it and knock "
                           "the hub off; leave it unset for a random id")


def _check_rules(ck: _Check, options_by_rule: dict[str, dict[str, Any] | None],
                 plugins: Any | None) -> tuple[dict[str, StrictModel | None], dict[str, bool]]:
    """Each rule's options through the rule's own model; returns the options and the enabled flags
    (every known rule, configured or not)."""
    rule_specs = plugins.rules() if plugins is not None else {}
    rules: dict[str, StrictModel | None] = {}
    enabled: dict[str, bool] = {name: spec.default_enabled for name, spec in rule_specs.items()}
    for name, options in options_by_rule.items():
        loc = ("rules", name)
        spec = rule_specs.get(name)
        if spec is None:
            if plugins is not None:
                ck.add(loc, f"rules.{name}",
                       tr("unknown rule (available: {rules})", rules=", ".join(sorted(rule_specs)) or _("none")))
            continue
        opts = dict(options or {})
        flag = opts.pop("enabled", True)
        if not isinstance(flag, bool):
            ck.add((*loc, "enabled"), f"rules.{name}.enabled",
                   tr("expected true or false (got {value})", value=repr(flag)))
            continue
        enabled[name] = flag
        if spec.options_model is not None:
            try:
                rules[name] = spec.options_model.model_validate(opts)
            except ValidationError as exc:
                _add_validation_issues(ck.issues, ck.path, ck.raw, exc, spec.options_model, prefix=loc)
        elif opts:
            ck.add(loc, f"rules.{name}", tr("this rule takes no options (got {options})",
                                            options=", ".join(map(str, opts))))
    for name, spec in rule_specs.items():
        if name not in rules and spec.options_model is not None:
            try:
                rules[name] = spec.options_model.model_validate({})
            except ValidationError:
                rules[name] = None
    return rules, enabled


def _unknown_sites(ck: _Check, i: int, c: ContractorConfig, site_ids: dict[str, int]) -> bool:
    bad = False
    for j, s in enumerate(c.sites or []):
        if s not in site_ids:
            ck.add(("contractors", i, "sites", j), f"contractors[{i}].sites[{j}]",
                   f"unknown site {s!r} (defined sites: {', '.join(site_ids) or 'none'})")
            bad = True
    return bad


def _check_contractors(ck: _Check, contractors: list[ContractorConfig], users: list[UserConfig],
                       site_ids: dict[str, int]) -> None:
    """Each contractor is a user with role contractor (when the config has ``users:``), named once, at
    known sites. Its sites are
    given once: ``contractors[].sites`` or the user's ``sites`` (the same list in both is accepted);
    after this both hold them, so the broker's ACL (``anninh acl``) and the hub read one list."""
    seen: dict[str, int] = {}
    for i, c in enumerate(contractors):
        loc = ("contractors", i)
        if c.name in seen:
            ck.add((*loc, "name"), f"contractors[{i}].name",
                   f"duplicate contractor {c.name!r} (also contractors[{seen[c.name]}])")
            continue
        seen[c.name] = i
        k, user = next(((k, u) for k, u in enumerate(users) if u.name == c.name), (-1, None))
        if user is None and not users:
            # no users: no logins and no roles (a loopback broker): the contractor is a name on its tickets
            _unknown_sites(ck, i, c, site_ids)
            continue
        if user is None:
            ck.add((*loc, "name"), f"contractors[{i}].name",
                   f"unknown user {c.name!r} (a contractor is a user with role contractor under users:)")
            continue
        if user.role != "contractor":
            ck.add((*loc, "name"), f"contractors[{i}].name",
                   f"user {c.name!r} has role {user.role}, not contractor")
            continue
        if _unknown_sites(ck, i, c, site_ids):
            continue
        if c.sites is not None and user.sites is not None and sorted(c.sites) != sorted(user.sites):
            ck.add(("users", k, "sites"), f"users[{k}].sites",
                   f"the sites of contractor {c.name!r} are given in contractors[{i}].sites too, differently; "
                   "give them in one place")
            continue
        if c.sites is None:
            if user.sites is not None:
                contractors[i] = c.model_copy(update={"sites": list(user.sites)})
        else:
            users[k] = user.model_copy(update={"sites": list(c.sites)})


# ------------------------------------------------------------------ entry point
def load_config(path: str | Path, plugins: Any | None = None) -> Config:
    """Load and validate a config file. ``plugins`` is a :class:`hub.plugins.PluginManager`
    whose platforms and rules validate their own sections. Raises :class:`ConfigError`."""
    path = Path(path)
    issues: list[ConfigIssue] = []
    secrets = _load_secrets(path, issues)
    resolved: dict[str, str] = {}
    raw = load_yaml(path, issues, secrets, resolved)
    if issues and raw is None:
        raise ConfigError(issues, resolved)
    if raw is None:
        raw = LineDict()
        raw.key_lines = {}
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue(path, getattr(raw, "line", 1), "",
                                       _("the config must be a mapping (hub:, mqtt:, sites:, devices:)"))], resolved)
    ck = _Check(path, raw, issues, _check_permissions(path))
    top = _check_sections(ck)
    site_ids = _check_sites(ck, top.sites)
    devices = _check_devices(ck, top.devices, plugins.platforms() if plugins is not None else {}, site_ids)
    user_names = _check_users(ck, top.users, site_ids)
    _check_client_id(ck, top.mqtt, user_names)
    rules, enabled = _check_rules(ck, top.rules, plugins)
    _check_contractors(ck, top.contractors, top.users, site_ids)
    if ck.issues:
        raise ConfigError(ck.issues, resolved)
    return Config(path=path, hub=top.hub, mqtt=top.mqtt, sites=top.sites, devices=devices,
                  users=top.users, rules=rules, rules_enabled=enabled, warnings=ck.warnings, export=top.export,
                  web=top.web, contractors=top.contractors, tickets=top.tickets)
