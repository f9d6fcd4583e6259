"""generic_onvif: the driver against the real-SOAP simulator on loopback, and through a whole hub
(real Mosquitto). Nothing of ours is mocked: onvif-zeep-async talks HTTP to the simulator."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.api import AuthError, DeviceError
from hub.core import Backoff
from plugins.generic_onvif import events as ev
from plugins.generic_onvif.driver import OnvifConfig, OnvifDriver, camera_utc, with_credentials
from plugins.generic_onvif.simulator import OnvifSimulator
from plugins.generic_onvif.soapxml import SoapParseError, parse_duration, parse_xml
from tests.support.context import FakeDeviceContext
from tests.support.hubrun import hub_from_yaml
from tests.support.mqtt import Recorder

PASSWORD = "p@ss:w/rd#1"  # characters that must be percent-encoded in an RTSP URL


def make_driver(sim: OnvifSimulator, **kw: Any) -> tuple[OnvifDriver, FakeDeviceContext]:
    cfg = OnvifConfig(id="cam", platform="generic_onvif", host="127.0.0.1", port=sim.port,
                      username=kw.pop("username", "admin"), password=kw.pop("password", PASSWORD),
                      timeout=kw.pop("timeout", 5), **kw)
    ctx = FakeDeviceContext("cam")
    return OnvifDriver(cfg, ctx), ctx


@pytest.fixture
async def sim():
    s = OnvifSimulator(username="admin", password=PASSWORD, port=0)
    await s.start()
    yield s
    await s.stop()


# --------------------------------------------------------------------------- driver, direct
async def test_device_media_snapshot_and_skew_compensation() -> None:
    async with OnvifSimulator(password=PASSWORD, clock_skew=600, time_tolerance=60) as sim:
        # the simulator really refuses a client that does not compensate the skew
        from onvif import ONVIFCamera
        from zeep.exceptions import Fault
        raw = ONVIFCamera("127.0.0.1", sim.port, "admin", PASSWORD, no_cache=True, adjust_time=False)
        dm = await raw.create_devicemgmt_service()
        with pytest.raises(Fault):
            await dm.GetDeviceInformation()
        await raw.close()
        assert sim.stats["time_rejects"] == 1

        driver, _ = make_driver(sim)
        info = await driver.connect()
        try:
            assert info.model == "DS-2CD2143G2-I"
            assert info.manufacturer == "HIKVISION"
            assert info.firmware == "V5.7.3 build 220112"
            assert info.serial == "DS-2CD2143G2-I20220315AAWRJ12345678"
            assert abs(info.extra["clock_skew"] - 600) <= 1
            assert info.extra["profile"] == "Profile_1"
            assert info.extra["resolution"] == "1920x1080"
            assert sim.stats["time_rejects"] == 1  # no new rejection: the driver compensated
            url = driver.stream_url()
            assert url == ("rtsp://admin:p%40ss%3Aw%2Frd%231@127.0.0.1:554/Streaming/Channels/101"
                           "?transportmode=unicast&profile=Profile_1")
            jpeg = await driver.snapshot()
            assert jpeg[:3] == b"\xff\xd8\xff"
            img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
            assert img is not None
            assert img.shape == (360, 640, 3)
            assert sim.stats["snapshots"] == 1
            polled = await driver.poll()
            assert polled is not None
            assert abs(polled["clock_skew"] - 600) <= 1
            # the camera's clock jumps (NTP fixed it): the next requests follow
            sim.clock_skew = 0
            polled = await driver.poll()
            assert polled is not None
            assert abs(polled["clock_skew"]) <= 1
            assert driver.client is not None
            assert (await driver.client.device_information())["Model"] == "DS-2CD2143G2-I"
            assert sim.stats["time_rejects"] == 1
        finally:
            await driver.close()


async def test_profile_choice_and_unknown_profile(sim: OnvifSimulator) -> None:
    driver, _ = make_driver(sim, profile="Profile_2")
    info = await driver.connect()
    assert info.extra["resolution"] == "640x360"
    assert "/Streaming/Channels/102" in (driver.stream_url() or "")
    await driver.close()
    driver, _ = make_driver(sim, profile="nope")
    with pytest.raises(DeviceError, match="Profile_1, Profile_2"):
        await driver.connect()
    await driver.close()


async def test_snapshot_error_page_and_basic_only(sim: OnvifSimulator) -> None:
    driver, _ = make_driver(sim)
    await driver.connect()
    try:
        sim.snapshot_mode = "error_page"
        with pytest.raises(DeviceError, match="not a JPEG"):
            await driver.snapshot()
        sim.snapshot_mode = "jpeg"
        sim.snapshot_auth = "basic"
        if driver._http is not None:  # a new session, as after a reconnect: the scheme is chosen again
            await driver._http.close()
            driver._http = None
        assert (await driver.snapshot())[:2] == b"\xff\xd8"
        picture = np.full((120, 160, 3), 200, np.uint8)
        sim.set_picture(picture)
        img = cv2.imdecode(np.frombuffer(await driver.snapshot(), np.uint8), cv2.IMREAD_COLOR)
        assert img is not None
        assert img.shape == (120, 160, 3) and abs(float(img.mean()) - 200) < 3
    finally:
        await driver.close()


async def test_wrong_password_is_auth_error_without_the_password(sim: OnvifSimulator) -> None:
    driver, _ = make_driver(sim, password="Wr0ngSecret")
    with pytest.raises(AuthError) as err:
        await driver.connect()
    assert "NotAuthorized" in str(err.value)
    assert "Wr0ngSecret" not in str(err.value) and PASSWORD not in str(err.value)
    assert sim.stats["auth_failures"] == 1
    await driver.close()
    sim.auth_fault_status = 401  # Hikvision style: 401 with the fault body
    driver, _ = make_driver(sim, password="Wr0ngSecret")
    with pytest.raises(AuthError):
        await driver.connect()
    await driver.close()
    sim.override("GetDeviceInformation", b"", status=401)  # 401 with an empty body
    driver, _ = make_driver(sim)
    with pytest.raises(AuthError):
        await driver.connect()
    await driver.close()


async def test_unreachable_is_device_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = OnvifConfig(id="cam", platform="generic_onvif", host="127.0.0.1", port=port, password="x", timeout=3)
    driver = OnvifDriver(cfg, FakeDeviceContext("cam"))
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match="cannot connect"):
        await driver.connect()
    assert time.monotonic() - t0 < 3
    await driver.close()


GARBAGE = [
    b"",
    b"<html><body>500 Internal Error</body></html>",
    b"\x00\xff\xfe garbage \x01",
    b"<?xml version='1.0'?><env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'><env:Body>"
    b"<Weird><Stuff/></Weird></env:Body></env:Envelope>",
    b"<?xml version='1.0'?><env:Envelope xmlns:env='http://www.w3.org/2003/05/soap-envelope'><env:Body>",
    b"<!DOCTYPE x [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;'>]><x>&b;&b;</x>",
]


@pytest.mark.parametrize("op", ["GetSystemDateAndTime", "GetDeviceInformation", "GetProfiles", "GetStreamUri"])
async def test_garbage_answers_become_device_errors(sim: OnvifSimulator, op: str) -> None:
    for body in GARBAGE:
        for status in (200, 500):
            sim.override(op, body, status=status, content_type="application/soap+xml")
            driver, _ = make_driver(sim, timeout=3)
            try:
                await driver.connect()
            except DeviceError as exc:
                assert PASSWORD not in str(exc)
            else:  # only a harmless answer may pass: nothing that the driver needed was lost
                pytest.fail(f"{op} answered {body[:30]!r} ({status}) and connect() still succeeded")
            finally:
                await driver.close()
                sim.clear_overrides()


async def test_garbage_services_falls_back_to_capabilities(sim: OnvifSimulator) -> None:
    sim.override("GetServices", b"<html>no</html>", status=500)
    driver, _ = make_driver(sim)
    info = await driver.connect()
    assert info.model == "DS-2CD2143G2-I"
    assert sim.stats["GetCapabilities"] == 1
    await driver.close()


async def test_listen_skips_unknown_and_survives_garbage_pulls(sim: OnvifSimulator) -> None:
    driver, ctx = make_driver(sim, event_timeout=30)
    await driver.connect()
    task = asyncio.create_task(driver.listen())
    try:
        await _until(lambda: ctx.fields.get("motion") is False)  # Initialized message
        sim.push_raw('<wsnt:NotificationMessage><wsnt:Topic Dialect="x">tns1:Some/Vendor/Thing</wsnt:Topic>'
                     '<wsnt:Message><tt:Message UtcTime="0000-00-00T00:00:00Z"><tt:Data>'
                     '<tt:SimpleItem Name="State" Value="maybe"/></tt:Data></tt:Message></wsnt:Message>'
                     "</wsnt:NotificationMessage>")
        sim.push_raw("<wsnt:NotificationMessage><wsnt:Topic>tns1:VideoSource/MotionAlarm</wsnt:Topic>"
                     "<wsnt:Message/></wsnt:NotificationMessage>")
        sim.trigger_motion(True)
        await _until(lambda: ctx.fields.get("motion") is True)
        assert [e for e in ctx.events if e[0] == "motion"] == [
            ("motion", {"active": True, "topic": "RuleEngine/CellMotionDetector/Motion",
                        "source": "VideoSourceToken,VideoAnalyticsToken,MyMotionDetectorRule"})]
        # a fault instead of messages: the subscription is recreated, events keep flowing
        sim.override("PullMessages", _fault_body(), status=400, times=1)
        sim.trigger_video_loss(False)  # ends the pull in flight; the next one gets the fault
        await _until(lambda: driver.subscriptions == 2)
        assert ctx.fields.get("video_loss") is False
        sim.trigger_motion(False)
        await _until(lambda: ctx.fields.get("motion") is False)
        # a garbage (non-XML) answer: listen() ends with a DeviceError, nothing else
        sim.override("PullMessages", b"\x00<<garbage", status=200, times=1)
        sim.trigger_video_loss(True)
        with pytest.raises(DeviceError):
            await asyncio.wait_for(task, 10)
        assert sim.subscriptions == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.close()
    assert sim.subscriptions == 0  # close() unsubscribed: no leaked subscription on the camera
    assert sim.stats["unsubscribes"] >= 1


async def test_local_time_only_and_time_behind_auth() -> None:
    # a camera that reports only LocalDateTime (UTC+7 per its POSIX TZ) and runs 300 s fast
    async with OnvifSimulator(password=PASSWORD, local_time_only=True, clock_skew=300, time_tolerance=30) as sim:
        driver, _ = make_driver(sim)
        info = await driver.connect()
        assert abs(info.extra["clock_skew"] - 300) <= 1
        await driver.close()
    # a camera that wants auth even for GetSystemDateAndTime (Vivotek, Panasonic)
    async with OnvifSimulator(password=PASSWORD, authless_time=False) as sim:
        driver, _ = make_driver(sim)
        info = await driver.connect()
        assert abs(info.extra["clock_skew"]) <= 1
        assert sim.stats["GetSystemDateAndTime"] == 2  # authless attempt refused, then with auth
        await driver.close()


def _fault_body() -> bytes:
    from plugins.generic_onvif.simulator import fault_envelope
    return fault_envelope("ter:InvalidArgVal", "The subscription does not exist")


async def _until(pred: Any, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.02)


# --------------------------------------------------------------------------- pure parsers
def test_event_mapping_table() -> None:
    c = ev.classify

    def found(*args: Any, **kwargs: Any) -> ev.OnvifEvent:
        event = c(*args, **kwargs)
        assert event is not None, args
        return event

    assert found("tns1:RuleEngine/CellMotionDetector/Motion", [("IsMotion", "true")]).kind == "motion"
    assert found("tns1:VideoSource/MotionAlarm", [("State", "FALSE")]).active is False
    assert found("tns1:VideoAnalytics/tnshik:MotionAlarm", [("State", "true")]).topic == "VideoAnalytics/MotionAlarm"
    assert found("tns1:RuleEngine/MotionRegionDetector/Motion", [("State", "1")]).active is True
    t = found("tns1:VideoSource/GlobalSceneChange/ImagingService", [("State", "true")], operation="Initialized")
    assert (t.kind, t.active, t.initialized) == ("tamper", True, True)
    assert found("tns1:RuleEngine/TamperDetector/Tamper", [("IsTamper", "false")]).kind == "tamper"
    assert found("tns1:VideoSource/SignalLoss", [("State", "true")]).kind == "video_loss"
    assert c("tns1:Device/Trigger/DigitalInput", [("LogicalState", "true")]) is None
    assert c("tns1:VideoSource/MotionAlarm", [("State", "perhaps")]) is None
    assert c("", [("State", "true")]) is None
    assert c(None, []) is None


def test_camera_utc_from_local_time_and_posix_tz() -> None:
    class Obj:
        def __init__(self, **kw: Any) -> None:
            self.__dict__.update(kw)
    local = Obj(Date=Obj(Year=2024, Month=3, Day=1, ), Time=Obj(Hour=7, Minute=30, Second=0))
    when = camera_utc(Obj(UTCDateTime=None, LocalDateTime=local, TimeZone=Obj(TZ="CST-7:00:00")))
    assert when.isoformat() == "2024-03-01T00:30:00+00:00"
    with pytest.raises(DeviceError):
        camera_utc(Obj(UTCDateTime=None, LocalDateTime=None, TimeZone=None))
    with pytest.raises(DeviceError):
        camera_utc(Obj(UTCDateTime=Obj(Date=Obj(Year=2024, Month=13, Day=40), Time=Obj(Hour=0, Minute=0, Second=0))))


def test_with_credentials_replaces_userinfo() -> None:
    assert with_credentials("rtsp://old:x@10.0.0.5:554/a?b=1", "ad min", "p@:/") == \
        "rtsp://ad%20min:p%40%3A%2F@10.0.0.5:554/a?b=1"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(topic=st.one_of(st.none(), st.text(max_size=80), st.sampled_from(list(ev.TOPICS))),
       data=st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=4),
       op=st.one_of(st.none(), st.text(max_size=12)))
def test_classify_never_raises(topic: Any, data: list[tuple[str, str]], op: Any) -> None:
    result = ev.classify(topic, data, [], op)
    assert result is None or result.kind in ev.KINDS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(lambda s: f"<wsnt:NotificationMessage "
       f"xmlns:wsnt='x' xmlns:tt='y'><wsnt:Topic>{s}</wsnt:Topic></wsnt:NotificationMessage>".encode()))
def test_xml_parsers_never_crash(blob: bytes) -> None:
    try:
        root = parse_xml(blob)
    except SoapParseError:
        return
    result = ev.from_notification_element(root)
    assert result is None or isinstance(result, ev.OnvifEvent)


@given(st.text(max_size=30))
def test_parse_duration_only_raises_parse_errors(value: str) -> None:
    try:
        assert parse_duration(value) >= 0
    except SoapParseError:
        pass


def test_from_zeep_notification_handles_odd_objects() -> None:
    assert ev.from_zeep_notification(None) is None
    assert ev.from_zeep_notification(object()) is None
    assert ev.from_zeep_notification({"Topic": 5}) is None
    el = parse_xml(b"<M xmlns='y' PropertyOperation='Changed'><Data><SimpleItem Name='IsMotion' Value='true'/>"
                   b"</Data></M>")

    class Holder:
        Topic = type("T", (), {"_value_1": "tns1:RuleEngine/CellMotionDetector/Motion"})()
        Message = type("M", (), {"_value_1": el})()
    got = ev.from_zeep_notification(Holder())
    assert got is not None and got.kind == "motion" and got.active is True


# --------------------------------------------------------------------------- through a whole hub
def hub_yaml(port: int, mqtt_port: int, **extra: Any) -> str:
    lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in extra.items())
    return f"""
hub:
  name: test
  data_dir: ./data
mqtt:
  server: mqtt://127.0.0.1:{mqtt_port}
sites:
  - id: kp3
devices:
  - id: cam1
    platform: generic_onvif
    site: kp3
    host: 127.0.0.1
    port: {port}
    username: admin
    password: !secret cam1_password
    poll_interval: 1
    timeout: 3
{lines}"""


async def _wait(rec: Recorder, fn: Any, *a: Any, **kw: Any) -> Any:
    return await asyncio.to_thread(fn, *a, **kw)


async def test_events_renewal_and_reboot_through_the_hub(mosquitto: Any, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    async with OnvifSimulator(password=PASSWORD, max_termination=2.0, clock_skew=-400) as sim:
        async with hub_from_yaml(hub_yaml(sim.port, mosquitto.port), tmp_path,
                                 secrets={"cam1_password": PASSWORD}) as running:
            state = await _wait(rec, rec.wait_topic, "anninh/cam1",
                                lambda j: j.get("motion") is False and j.get("model") == "DS-2CD2143G2-I")
            assert abs(state["clock_skew"] + 400) <= 1 and state["serial"].startswith("DS-2CD2143G2-I")
            sim.trigger_motion(True)
            e = await _wait(rec, rec.wait_event, "anninh", "motion", active=True)
            assert e["device"] == "cam1" and e["site"] == "kp3"
            await _wait(rec, rec.wait_topic, "anninh/cam1", lambda j: j.get("motion") is True)
            sim.trigger_tamper(True)
            await _wait(rec, rec.wait_event, "anninh", "tamper", active=True)
            sim.trigger_motion(False)
            sim.trigger_tamper(False)
            await _wait(rec, rec.wait_event, "anninh", "motion", active=False)
            await _wait(rec, rec.wait_topic, "anninh/cam1", lambda j: j["tamper"] is False)
            # the camera grants 2 s subscriptions: the driver must renew them to keep receiving
            await _until(lambda: sim.stats["renewals"] >= 3, timeout=10)
            driver = running.hub.runners["cam1"].driver
            assert isinstance(driver, OnvifDriver)
            assert driver.subscriptions == 1 and sim.stats["expired"] == 0
            n = rec.count()
            sim.trigger_motion(True)
            await _wait(rec, rec.wait_event, "anninh", "motion", active=True, after=n)
            assert len(rec.events("anninh", "motion")) == 3  # two topics per change, one event each

            # reboot: connections refused for 1.5 s and the subscription is forgotten
            n = rec.count()
            await sim.reboot(1.5)
            await _wait(rec, rec.wait_topic, "anninh/cam1/availability", lambda j: j["state"] == "offline",
                        after=n)
            await _wait(rec, rec.wait_topic, "anninh/cam1/availability", lambda j: j["state"] == "online",
                        after=n, timeout=15)
            await _until(lambda: sim.subscriptions == 1, timeout=10)
            m = rec.count()
            sim.trigger_motion(True)
            await _wait(rec, rec.wait_event, "anninh", "motion", active=True, after=m)
            assert sim.stats["subscriptions_created"] == 2
    rec.close()
    for msg in rec.messages:
        assert PASSWORD.encode() not in msg.payload
        assert b"p%40ss" not in msg.payload


async def test_motion_without_end_times_out(mosquitto: Any, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    async with OnvifSimulator(password=PASSWORD, motion_topics=("hik",), upper_case_bools=True) as sim:
        async with hub_from_yaml(hub_yaml(sim.port, mosquitto.port, event_timeout=1.0), tmp_path,
                                 secrets={"cam1_password": PASSWORD}):
            await _wait(rec, rec.wait_topic, "anninh/cam1/availability", lambda j: j["state"] == "online")
            await _until(lambda: sim.subscriptions == 1)
            t0 = time.monotonic()
            sim.trigger_motion(True)
            await _wait(rec, rec.wait_event, "anninh", "motion", active=True)
            e = await _wait(rec, rec.wait_event, "anninh", "motion", active=False)
            assert e["reason"] == "timeout" and 0.8 < time.monotonic() - t0 < 4
    rec.close()


async def test_wrong_password_offline_and_retried_slowly(mosquitto: Any, tmp_path: Path) -> None:
    rec = Recorder(mosquitto.port)
    async with OnvifSimulator(password=PASSWORD) as sim:
        async with hub_from_yaml(hub_yaml(sim.port, mosquitto.port), tmp_path,
                                 secrets={"cam1_password": "not-the-password"},
                                 backoff=Backoff(initial=0.2, maximum=1.0, auth_minimum=30.0)) as running:
            e = await _wait(rec, rec.wait_event, "anninh", "device_offline", device="cam1")
            assert "NotAuthorized" in e["error"]
            await _wait(rec, rec.wait_topic, "anninh/cam1/availability", lambda j: j["state"] == "offline")
            await asyncio.sleep(2.5)  # with backoff 0.2..1 s a non-auth error would be retried ~4 times
            assert sim.stats["auth_failures"] == 1
            assert sim.stats["GetDeviceInformation"] == 1
            assert running.hub.availability["cam1"] is False
    rec.close()
    for msg in rec.messages:
        assert b"not-the-password" not in msg.payload


def _token_envelope(password: str, created: str, nonce: bytes = b"0123456789abcdef") -> bytes:
    import base64
    import hashlib
    digest = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()
    return (
        "<s:Envelope xmlns:s='http://www.w3.org/2003/05/soap-envelope'><s:Header><wsse:Security xmlns:wsse="
        "'http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd'><wsse:UsernameToken>"
        "<wsse:Username>admin</wsse:Username><wsse:Password Type='http://docs.oasis-open.org/wss/2004/01/"
        f"oasis-200401-wss-username-token-profile-1.0#PasswordDigest'>{digest}</wsse:Password>"
        f"<wsse:Nonce>{base64.b64encode(nonce).decode()}</wsse:Nonce><wsu:Created xmlns:wsu='x'>{created}"
        "</wsu:Created></wsse:UsernameToken></wsse:Security></s:Header><s:Body/></s:Envelope>").encode()


def test_simulator_checks_digest_created_and_replay() -> None:
    from datetime import UTC, datetime, timedelta
    sim = OnvifSimulator(password="pw", clock_skew=0, time_tolerance=60)
    now = datetime.now(UTC).replace(microsecond=0)
    plus = now.isoformat()                                 # "+00:00", as zeep's default and older HA send
    zulu = now.strftime("%Y-%m-%dT%H:%M:%SZ")              # "Z", as onvif-zeep-async 4.x sends
    assert plus.endswith("+00:00")
    assert sim.check_auth(parse_xml(_token_envelope("pw", plus, b"a" * 16))) is None
    assert sim.check_auth(parse_xml(_token_envelope("pw", zulu, b"b" * 16))) is None
    assert sim.check_auth(parse_xml(_token_envelope("pw", zulu, b"b" * 16))) == "nonce replayed"
    assert sim.check_auth(parse_xml(_token_envelope("bad", zulu, b"c" * 16))) == "wrong digest"
    old = (now - timedelta(seconds=120)).isoformat()
    assert "away from the camera clock" in (sim.check_auth(parse_xml(_token_envelope("pw", old, b"d" * 16))) or "")
    sim.clock_skew = -120  # the camera is as far behind as the client: accepted
    assert sim.check_auth(parse_xml(_token_envelope("pw", old, b"e" * 16))) is None


async def test_camera_without_pullpoint_stays_online_without_events(sim: OnvifSimulator, monkeypatch: Any) -> None:
    from plugins.generic_onvif.simulator import fault_envelope
    sim.override("CreatePullPointSubscription", fault_envelope("ter:ActionNotSupported", "Optional Action Not "
                 "Implemented", code="env:Receiver"), status=400)
    from plugins.generic_onvif import driver as drv_mod
    monkeypatch.setattr(drv_mod, "RETRY_REFUSED", 0.3)
    driver, ctx = make_driver(sim)
    await driver.connect()
    task = asyncio.create_task(driver.listen())
    try:
        await _until(lambda: ctx.fields.get("events") == "unsupported")
        assert not task.done()  # idle, not raising: the device stays online
        assert (await driver.snapshot())[:2] == b"\xff\xd8"
        # the camera frees a slot: the driver tries again (every RETRY_REFUSED s) and gets events
        assert sim.stats["CreatePullPointSubscription"] >= 1
        sim.clear_overrides()
        await _until(lambda: ctx.fields.get("events") == "pullpoint" and sim.subscriptions == 1)
        sim.trigger_motion(True)
        await _until(lambda: ctx.fields.get("motion") is True)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await driver.close()


# --------------------------------------------------------------------------- onvif-zeep-async as Home Assistant uses it
async def test_home_assistant_setup_sequence_with_onvif_zeep_async(sim: OnvifSimulator) -> None:
    """The calls of homeassistant/components/onvif/device.py ``async_setup`` (and its event manager),
    in order, with the real client library: each must be answered, not faulted."""
    from datetime import UTC, datetime, timedelta

    from onvif import ONVIFCamera

    cam = ONVIFCamera("127.0.0.1", sim.port, "admin", PASSWORD, no_cache=True, adjust_time=False)
    try:
        await cam.update_xaddrs()
        caps = await cam.get_capabilities()
        assert caps is not None and caps["Events"]["WSPullPointSupport"] is True
        dm = await cam.create_devicemgmt_service()
        clock = await dm.GetSystemDateAndTime()
        assert clock.UTCDateTime.Date.Year == datetime.now(UTC).year
        info = await dm.GetDeviceInformation()
        assert (info.Manufacturer, info.SerialNumber) == ("HIKVISION", sim.info["SerialNumber"])
        nics = await dm.GetNetworkInterfaces()  # Home Assistant's MAC; setup fails if this faults
        assert [n.Info.HwAddress for n in nics if n.Enabled] == [sim.mac]
        media = await cam.create_media_service()
        media_caps = await media.GetServiceCapabilities()
        assert media_caps.SnapshotUri is True
        profiles = [p for p in await media.GetProfiles() if p.VideoEncoderConfiguration.Encoding == "H264"]
        assert [(p.token, p.VideoEncoderConfiguration.Resolution.Width) for p in profiles] == [
            ("Profile_1", 1920), ("Profile_2", 640)]
        sources = await media.GetVideoSources()
        assert (sources[0].token, sources[0].Resolution.Width, sources[0].Resolution.Height) == (
            "VideoSource_1", 1920, 1080)
        req = media.create_type("GetStreamUri")
        req.ProfileToken = profiles[0].token
        req.StreamSetup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        uri = (await media.GetStreamUri(req)).Uri
        assert uri.startswith(f"rtsp://127.0.0.1:{sim.rtsp_port}/Streaming/Channels/101")
        jpeg = await cam.get_snapshot(profiles[0].token)
        assert jpeg is not None and jpeg[:3] == b"\xff\xd8\xff"
        # events, as Home Assistant's PullPointManager use: subscribe, long-poll, unsubscribe
        manager = await cam.create_pullpoint_manager(timedelta(seconds=60), lambda: None)
        pull = manager.get_service()
        first = await pull.PullMessages({"Timeout": timedelta(seconds=2), "MessageLimit": 100})
        assert len(first.NotificationMessage) >= 2  # the "Initialized" state of each property
        sim.trigger_motion(True)
        seen = await pull.PullMessages({"Timeout": timedelta(seconds=5), "MessageLimit": 100})
        topics = {m.Topic._value_1 for m in seen.NotificationMessage}
        assert "tns1:RuleEngine/CellMotionDetector/Motion" in topics
        await manager.shutdown()
        assert sim.stats["unsubscribes"] == 1 and sim.stats["not_supported"] == 0
    finally:
        await cam.close()


async def test_unsupported_action_is_a_receiver_fault_with_http_500(sim: OnvifSimulator) -> None:
    import httpx
    from onvif import ONVIFCamera
    from onvif.util import is_auth_error
    from zeep.exceptions import Fault

    body = ('<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope">'
            '<s:Body><tds:GetDNS xmlns:tds="http://www.onvif.org/ver10/device/wsdl"/></s:Body></s:Envelope>')
    async with httpx.AsyncClient() as client:
        r = await client.post(f"{sim.base_url}/onvif/device_service", content=body,
                              headers={"Content-Type": "application/soap+xml; charset=utf-8"})
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/soap+xml")
    fault = parse_xml(r.content)
    values = [e.text for e in fault.iter() if e.tag.endswith("}Value")]
    assert values == ["env:Receiver", "ter:ActionNotSupported"]
    cam = ONVIFCamera("127.0.0.1", sim.port, "admin", PASSWORD, no_cache=True, adjust_time=False)
    try:
        dm = await cam.create_devicemgmt_service()
        with pytest.raises(Fault) as err:  # zeep turns the 500 into a Fault, as clients expect
            await dm.GetDNS()
        assert "Not Implemented" in str(err.value.message) and not is_auth_error(err.value)
        assert [q.localname for q in err.value.subcodes or []] == ["ActionNotSupported"]
    finally:
        await cam.close()


async def test_driver_with_a_camera_that_lacks_services_and_pullpoint(monkeypatch: Any) -> None:
    """Our driver on a device whose unsupported actions answer the real 500 fault: it falls back to
    GetCapabilities, and stays online without events."""
    from plugins.generic_onvif import driver as drv_mod

    monkeypatch.setattr(drv_mod, "RETRY_REFUSED", 30)
    async with OnvifSimulator(password=PASSWORD, unsupported={"GetServices", "CreatePullPointSubscription"}) as sim:
        driver, ctx = make_driver(sim)
        await driver.connect()
        task = asyncio.create_task(driver.listen())
        try:
            deadline = time.monotonic() + 5
            while ctx.fields.get("events") != "unsupported" and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert ctx.fields.get("events") == "unsupported" and not task.done()
            assert sim.stats["GetCapabilities"] >= 1 and sim.stats["not_supported"] >= 2
            assert (await driver.snapshot())[:2] == b"\xff\xd8"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await driver.close()


async def test_stream_uri_plays_with_ffprobe() -> None:
    from onvif import ONVIFCamera

    from tests.support.rtsp import probe_stream, probe_unavailable

    if why := probe_unavailable():
        pytest.skip(f"no RTSP stream test here: {why} (scripts/test.sh installs it)")
    async with OnvifSimulator(password=PASSWORD, rtsp=True) as sim:
        cam = ONVIFCamera("127.0.0.1", sim.port, "admin", PASSWORD, no_cache=True, adjust_time=False)
        try:
            await cam.update_xaddrs()
            media = await cam.create_media_service()
            for token in ("Profile_1", "Profile_2"):
                uri = (await media.GetStreamUri({"ProfileToken": token, "StreamSetup": {
                    "Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}})).Uri
                assert f":{sim.rtsp_port}/" in uri
                # like Home Assistant, put the ONVIF user's credentials into the URI the camera gave
                info = await asyncio.to_thread(probe_stream, with_credentials(uri, "admin", PASSWORD))
                assert (info["codec_name"], info["width"]) == ("h264", 640)
        finally:
            await cam.close()
        driver, _ctx = make_driver(sim)
        try:
            await driver.connect()
            url = driver.stream_url()
            assert url is not None
            info = await asyncio.to_thread(probe_stream, url)  # our driver's URL plays too
            assert info["codec_name"] == "h264"
        finally:
            await driver.close()
