"""Fuzz the command path: ``/set`` payload parser, then a running hub's ``Hub.command``.

Whatever arrives, the parser returns a dict or raises CommandParseError, and the hub either
carries the command out or rejects it with a ``command_rejected`` event — no exception, no
change to the device unless the command was valid. ``FUZZ_LONG=1`` multiplies the budget.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.api import HubEvent
from hub.bridge import MAX_COMMAND_BYTES, CommandParseError, parse_command
from hub.config import load_config
from hub.core import Hub, Listener
from tests import plugin_echo
from tests.support.hubrun import make_plugins, write_config

LONG = os.environ.get("FUZZ_LONG") == "1"


def budget(n: int) -> Any:
    return settings(max_examples=n * 40 if LONG else n, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


def _parse(payload: bytes) -> dict[str, Any] | None:
    try:
        out = parse_command(payload)
    except CommandParseError as exc:
        assert str(exc)
        return None
    assert isinstance(out, dict)
    assert len(payload) <= MAX_COMMAND_BYTES
    return out


@budget(400)
@given(st.binary(max_size=600))
def test_random_bytes(payload: bytes) -> None:
    _parse(payload)


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
                    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
                    max_leaves=20)


@budget(300)
@given(JSON, st.sampled_from(["", " ", "\n", "\ufeff", "\x00"]))
def test_json_shapes(value: Any, pad: str) -> None:
    payload = (pad + json.dumps(value) + pad).encode()
    out = _parse(payload)
    if isinstance(value, dict) and out is not None:
        assert out == json.loads(json.dumps(value))


@budget(40)
@given(st.integers(1, 100_000), st.sampled_from(["[", "{\"a\":", "\"", " "]))
def test_deep_or_huge(n: int, unit: str) -> None:
    _parse((unit * n).encode())


def test_limits_are_enforced() -> None:
    assert _parse(b'{"state":"ON"}') == {"state": "ON"}
    assert _parse(b"on") == {"state": "ON"}
    assert _parse(b'{"state":"ON","x":"' + b"a" * MAX_COMMAND_BYTES + b'"}') is None
    assert _parse(b"[" * 3000) is None


# ---------------------------------------------------------------- through a running hub (no broker)
COMMANDS = st.dictionaries(st.sampled_from(["state", "value", "mode", "x", "State", ""]),
                           st.none() | st.booleans() | st.integers(-5, 2000) | st.floats()
                           | st.sampled_from(["ON", "OFF", "on", "TOGGLE", "auto", ""]) | st.text(max_size=5)
                           | st.lists(st.integers(), max_size=2), max_size=3)


def test_hub_commands(tmp_path: Path) -> None:
    """One hub for many fuzzed commands: every one is carried out or rejected, none raises."""
    path = write_config(tmp_path, "hub: {data_dir: ./data}\ndevices: [{id: e1, platform: echo}]\n")
    pm = make_plugins(("echo", plugin_echo), builtin=False)
    config = load_config(path, pm)
    events: list[HubEvent] = []
    results: list[tuple[dict[str, Any], bool]] = []

    async def main() -> None:
        hub = Hub(config, pm, storage=False)
        hub.listeners.append(Listener(on_event=events.append))
        await hub.start()
        try:
            @budget(300)
            @given(COMMANDS, st.sampled_from(["e1", "nope", "E1", "e1/x", "", "bridge"]),
                   st.none() | st.text(max_size=10))
            def run(payload: dict[str, Any], device: str, user: str | None) -> None:
                before = len(events)
                ok = asyncio.run_coroutine_threadsafe(hub.command(device, dict(payload), user=user),
                                                      loop).result(5)
                results.append((payload, ok))
                new = [e.type for e in events[before:]]
                if ok:
                    assert device == "e1"
                    # the model accepts only state ON/OFF and value 0..1000, nothing else
                    assert set(payload) <= {"state", "value"}
                    assert new == ["command"]
                else:
                    assert new in (["command_rejected"], ["command_failed"]), new

            loop = asyncio.get_running_loop()
            await asyncio.to_thread(run)
        finally:
            await hub.stop()

    plugin_echo.BEHAVIOUR.clear()
    asyncio.run(main())
    plugin_echo.BEHAVIOUR.clear()
    assert any(ok for _, ok in results) and any(not ok for _, ok in results)


# ---------------------------------------------------------------- strict parsing (issue 15)
def test_strict_json() -> None:
    for bad in (b'{"state":"ON","state":"OFF"}', b'{"state":"ON","hold":NaN}', b'{"hold":Infinity}',
                b'{"hold":-Infinity}'):
        try:
            parse_command(bad)
        except CommandParseError as exc:
            assert "more than once" in str(exc) or "not a JSON number" in str(exc)
        else:
            raise AssertionError(bad)


def test_light_commands_are_parsed_strictly(tmp_path: Path) -> None:
    """What the README promises stays accepted; anything looser is a command_rejected with a
    clear error and changes nothing (checked through Hub.command, as MQTT commands go)."""
    from plugins.lighting.driver import LightCommand

    accepted = [b'{"state":"ON"}', b'{"state":"OFF"}', b"ON", b"off", b'{"mode":"auto"}',
                b'{"state":"ON","hold":3600}', b'{"state":"OFF","hold":1}', b'{"state":"ON","hold":86400}',
                b'{"state":"TOGGLE"}', b'{"mode":"manual","hold":60}']
    rejected = {b'{"state":"ON","hold":true}': "hold", b'{"state":"ON","hold":"1e3"}': "hold",
                b'{"state":"ON","hold":"3600"}': "hold", b'{"state":"ON","hold":" 60 "}': "hold",
                b'{"state":"ON","hold":"1_000"}': "hold", b'{"state":"ON","hold":3600.5}': "hold",
                b'{"state":"ON","hold":0}': "hold", b'{"state":"ON","hold":86401}': "hold",
                b'{"state":"on"}': "state", b'{"state":true}': "state", b'{"mode":"AUTO"}': "mode",
                b'{"state":"ON","brightness":5}': "brightness", b"{}": "at least one"}
    for raw in accepted:
        LightCommand.model_validate(parse_command(raw), strict=True)
    for raw, word in rejected.items():
        try:
            LightCommand.model_validate(parse_command(raw), strict=True)
        except ValueError as exc:
            assert word in str(exc), (raw, str(exc))
        else:
            raise AssertionError(raw)
    # and the hub validates strictly whatever the driver's model says (echo: value is an int)
    path = write_config(tmp_path, "hub: {data_dir: ./data}\ndevices: [{id: e1, platform: echo}]\n")
    pm = make_plugins(("echo", plugin_echo), builtin=False)
    config = load_config(path, pm)
    events: list[HubEvent] = []

    async def main() -> None:
        hub = Hub(config, pm, storage=False)
        hub.listeners.append(Listener(on_event=events.append))
        await hub.start()
        try:
            assert not await hub.command("e1", {"value": "7"})
            assert not await hub.command("e1", {"value": True})
            assert await hub.command("e1", {"value": 7})
        finally:
            await hub.stop()

    asyncio.run(main())
    plugin_echo.BEHAVIOUR.clear()
    commands = [e for e in events if e.type.startswith("command")]
    assert [e.type for e in commands] == ["command_rejected", "command_rejected", "command"]
    assert "valid integer" in commands[0].data["error"]


def test_rejections_are_summarised_per_user_and_kind(tmp_path: Path) -> None:
    """A named user's flood of bad commands: one command_rejected at once, then one with the count
    at the end of the interval; two audit rows; other users and kinds unaffected."""
    path = write_config(tmp_path, """
hub: {data_dir: ./data}
devices: [{id: e1, platform: echo}]
users: [{name: an, role: officer, password: an-pass-1}, {name: bo, role: officer, password: bo-pass-1}]
""")
    pm = make_plugins(("echo", plugin_echo), builtin=False)
    config = load_config(path, pm)
    events: list[HubEvent] = []
    audit: list[dict[str, Any]] = []

    async def main() -> None:
        hub = Hub(config, pm)
        hub.rejection_interval = 0.5
        hub.listeners.append(Listener(on_event=events.append))
        await hub.start()
        try:
            for _ in range(500):
                hub.reject_command("e1", "not JSON", user="an", payload={"bytes": 3}, source="mqtt", kind="malformed")
                assert not await hub.command("e1", {"state": "PURPLE"}, user="an")
            assert not await hub.command("e1", {"state": "PURPLE"}, user="bo")
            assert await hub.command("e1", {"state": "ON"}, user="an")  # a valid command is not held back
            assert len([e for e in events if e.type == "command_rejected"]) == 3
            await asyncio.sleep(0.7)
            assert hub.history is not None
            hub.history.flush()
            audit.extend(hub.history.audit())
        finally:
            await hub.stop()

    asyncio.run(main())
    plugin_echo.BEHAVIOUR.clear()
    rejected = [e for e in events if e.type == "command_rejected"]
    counts = sorted((e.data["user"], e.data.get("count", 1), e.data["error"][:9]) for e in rejected)
    assert counts == [("an", 1, "not JSON"), ("an", 1, "state: In"), ("an", 499, "not JSON"),
                      ("an", 499, "state: In"), ("bo", 1, "state: In")], counts
    assert [e.type for e in events].count("command") == 1
    assert len([a for a in audit if a["result"] == "rejected"]) == 5
    assert sum("499 more" in (a["error"] or "") for a in audit) == 2


def test_command_flood_scaled_down(tmp_path: Path) -> None:
    """bench/bench_command_flood.py at a tenth of its rate and 2 s: no valid officer command
    lost, the flood summarised in a few events, the history hardly grows."""
    from tests.support.flood import flood

    r = flood(tmp_path, rate=2000, seconds=2.0, valid=5)
    assert r["flood_sent"] >= 3000, r
    assert r["valid_audited"] == r["valid_sent"] == 5, r
    assert r["rejected_counted"] == r["flood_sent"], r  # every one received and counted
    assert 1 <= r["rejected_events"] <= 6, r
    assert r["history_rows"] < 60 and r["history_growth"] < 100_000, r
