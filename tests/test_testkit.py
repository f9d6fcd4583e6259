"""The test support itself: the fake device context implements the whole hub.api protocol (as do
the hub's own contexts), and nothing test-only is in the installed package."""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from hub.api import DeviceConfig, DeviceContext, MqttAccess
from hub.api.detached import DetachedContext
from hub.core import DeviceContextImpl
from tests.support.context import FakeDeviceContext, FakeMqtt, topic_matches

ROOT = Path(__file__).resolve().parents[1]


def protocol_members(proto: type) -> tuple[set[str], dict[str, Any]]:
    """(attributes, methods) a Protocol declares, read from the class itself so that a member
    added to hub.api is checked here without editing this test."""
    attrs = {name for name in inspect.get_annotations(proto) if not name.startswith("_")}
    attrs |= {name for name, value in proto.__dict__.items()  # read-only attributes, declared as properties
              if isinstance(value, property) and not name.startswith("_")}
    methods = {name: value for name, value in proto.__dict__.items()
               if inspect.isfunction(value) and not name.startswith("_")}
    return attrs, methods


def signature_of(fn: Any) -> list[tuple[str, Any, Any]]:
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [(p.name, p.kind, p.default) for p in params]


def assert_implements(obj: Any, proto: type) -> None:
    attrs, methods = protocol_members(proto)
    missing = sorted(a for a in attrs if not hasattr(obj, a))
    assert not missing, f"{type(obj).__name__} lacks {missing} of {proto.__name__}"
    for name, fn in methods.items():
        impl = getattr(obj, name, None)
        assert callable(impl), f"{type(obj).__name__} lacks {name}() of {proto.__name__}"
        assert signature_of(impl) == signature_of(fn), f"{type(obj).__name__}.{name} differs from {proto.__name__}"


def test_protocol_reader_sees_every_member() -> None:
    # the reader must see the members the docs promise, or the checks below would pass vacuously
    attrs, methods = protocol_members(DeviceContext)
    assert {"device_id", "site", "clock", "tz", "log", "sun", "mqtt"} <= attrs
    assert {"update", "event", "create_task", "state", "remember", "recall"} <= set(methods)
    assert set(protocol_members(MqttAccess)[1]) == {"publish", "subscribe"}


class _Half:  # what the old per-test fakes were: no remember/recall, no tz, no mqtt
    device_id, site, clock, log, sun = "x", None, None, None, None

    def update(self, fields: Any) -> None: ...

    def event(self, type: str, **data: Any) -> None: ...


def test_the_check_catches_a_partial_context() -> None:
    with pytest.raises(AssertionError, match="lacks"):
        assert_implements(_Half(), DeviceContext)


def _config() -> DeviceConfig:
    return DeviceConfig.model_validate({"id": "dev", "platform": "x", "site": "kp3"})


@pytest.mark.parametrize("make", [lambda: FakeDeviceContext("dev"), lambda: DetachedContext(_config())],
                         ids=["FakeDeviceContext", "DetachedContext"])
def test_contexts_implement_the_whole_protocol(make: Any) -> None:
    ctx = make()
    assert_implements(ctx, DeviceContext)
    assert_implements(ctx.mqtt, MqttAccess)


def test_the_hubs_own_context_has_the_same_methods() -> None:
    attrs, methods = protocol_members(DeviceContext)
    for name, fn in methods.items():
        assert signature_of(getattr(DeviceContextImpl, name)) == signature_of(fn), name
    # attributes are set per instance by the hub; mqtt is a property
    source = inspect.getsource(DeviceContextImpl)
    for attr in attrs:
        assert re.search(rf"self\.{attr}\b|def {attr}\(", source), attr


async def test_fake_records_and_remembers_like_the_hub() -> None:
    ctx = FakeDeviceContext("light-1", "kp3")
    ctx.update({"state": "ON"})
    ctx.update({"mode": "manual"})
    assert ctx.state() == {"state": "ON", "mode": "manual"} and ctx.state("light-1") is ctx.fields
    assert ctx.updates == [{"state": "ON"}, {"mode": "manual"}] and ctx.updated.is_set()
    ctx.others["ups-1"] = {"on_battery": True}
    assert ctx.state("ups-1") == {"on_battery": True} and ctx.state("nobody") == {}

    ctx.event("motion", channel=1, active=True)
    (e,) = ctx.events
    assert e["type"] == "motion" and e["channel"] == 1 and e.get("ended") is None
    assert e == ("motion", {"channel": 1, "active": True})
    assert ctx.of_type("motion", active=True) == [{"type": "motion", "channel": 1, "active": True}]
    assert ctx.of_type("motion", active=False) == []

    hold = {"state": "ON", "until": "2026-01-01T06:00:00+07:00"}
    ctx.remember("hold", hold)
    hold["state"] = "OFF"  # stored as JSON, not by reference (the hub writes it to disk)
    assert ctx.recall("hold") == {"state": "ON", "until": "2026-01-01T06:00:00+07:00"}
    ctx.remember("hold", None)
    assert ctx.recall("hold") is None and ctx.recall("never") is None
    with pytest.raises(TypeError):
        ctx.remember("bad", object())
    assert FakeDeviceContext(memory={"hold": [1, 2]}).recall("hold") == [1, 2]

    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        await asyncio.sleep(3600)

    task = ctx.create_task(forever(), name="loop")
    await asyncio.wait_for(started.wait(), 2)
    assert ctx.tasks == {task} and task.get_name() == "loop"
    await ctx.cancel_tasks()
    assert task.cancelled() and not ctx.tasks


def test_fake_mqtt_delivers_to_matching_subscriptions() -> None:
    mqtt = FakeMqtt()
    got: list[tuple[str, bytes]] = []
    unsub = mqtt.subscribe("tasmota/+/stat/#", lambda t, p: got.append((t, p)))
    assert mqtt.deliver("tasmota/relay1/stat/POWER", "ON") == 1
    assert mqtt.deliver("tasmota/relay1/tele/STATE", b"{}") == 0
    unsub()
    assert mqtt.deliver("tasmota/relay1/stat/POWER", "OFF") == 0
    assert got == [("tasmota/relay1/stat/POWER", b"ON")]
    mqtt.publish("cmnd/relay1/POWER", "ON", qos=0)
    assert mqtt.published == [("cmnd/relay1/POWER", b"ON", 0, False)]
    assert topic_matches("a/#", "a") and topic_matches("+/b", "a/b") and not topic_matches("a/+", "a/b/c")


def test_detached_context_runs_tasks_only_on_a_loop() -> None:
    ctx = DetachedContext(_config())

    async def job() -> int:
        return 7

    coro = job()
    assert ctx.create_task(coro) is None  # no loop (``anninh acl`` only constructs drivers)
    assert inspect.getcoroutinestate(coro) == inspect.CORO_CLOSED

    async def main() -> int:
        task = ctx.create_task(job())
        assert task is not None
        return await task

    assert asyncio.run(main()) == 7
    ctx.remember("k", 1)
    assert ctx.recall("k") == 1 and ctx.state() == {} and ctx.site == "kp3"


def test_the_package_holds_no_test_support() -> None:
    """What setuptools packs (hub*, plugins*) imports nothing from tests/ and has no testing
    module; the simulators' RTSP server ships inside hub/ (``anninh simulate`` needs it)."""
    from hub.camera.simrtsp import RTSP_SCRIPT

    assert RTSP_SCRIPT.is_file() and RTSP_SCRIPT.is_relative_to(ROOT / "hub")
    offenders = []
    for top in ("hub", "plugins"):
        for path in sorted((ROOT / top).rglob("*.py")):
            text = path.read_text()
            if path.stem in ("testing", "conftest") or re.search(r"^\s*(from|import) (tests|pytest)\b", text, re.M):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
