"""Maintenance tickets on a running hub (issue 11, item 2): simulated UPS units and a relay board
over real sockets, a real Mosquitto on the files ``anninh acl`` writes, and a hand-set clock.

A fault lasting ``open_after`` opens one ticket, never two; the contractor of the site acknowledges
and resolves it over MQTT, another site's contractor and an officer are refused (by the broker, and by
the hub again); ``ticket_overdue`` comes once at the deadline, also across a restart; a fault gone
``close_after`` closes its ticket as recovered; ``anninh tickets`` lists and acts, with a hub running
and without one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from hub.api import HubEvent
from hub.cli.main import main as anninh
from hub.clock import ManualClock
from hub.config import load_config
from hub.core import Listener
from hub.ops.tickets import TicketDB, TicketRefused
from plugins.lighting.simulator import RelayBoardSimulator
from plugins.ups_modbus.simulator import UpsSimulator
from tests.certs import Client, GeneratedBroker
from tests.support.hubrun import hub_from_yaml, make_plugins, write_config
from tests.support.hubrun import wait_until as _wait
from tests.support.mosquitto import _free_port
from tests.support.mqtt import Recorder

BASE = "anninh"
NOT_AUTHORIZED = 135
SECRETS = {"mqtt_password": "hub-Secret-1", "an": "an-pw-1", "thau1": "thau1-pw-2", "thau2": "thau2-pw-3",
           "ian": "ian-pw-5"}
START = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def _yaml(port: int, ups_port: int, relay_port: int) -> str:
    return f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt:
  server: "mqtt://127.0.0.1:{port}"
  username: hub
  password: !secret mqtt_password
sites: [{{id: kp3}}, {{id: cho}}]
devices:
  - {{id: ups-kp3, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {ups_port}, unit: 1, model: apc_smt,
      poll_interval: 0.3, timeout: 0.5}}
  - {{id: ups-cho, platform: ups_modbus, site: cho, host: 127.0.0.1, port: {ups_port}, unit: 2, model: apc_smt,
      poll_interval: 0.3, timeout: 0.5}}
  - {{id: light-kp3, platform: lighting, site: kp3, driver: modbus_coil, host: 127.0.0.1, port: {relay_port},
      unit: 1, channel: 0, poll_interval: 0.3, timeout: 0.5}}
users:
  - {{name: an, role: officer, password: !secret an}}
  - {{name: thau1, role: contractor, password: !secret thau1}}
  - {{name: thau2, role: contractor, password: !secret thau2}}
  - {{name: ian, role: installer, password: !secret ian}}
contractors:
  - {{name: thau1, phone: "0912 345 678", sites: [kp3], deadlines: {{light: 2h, ups: 72h}}}}
  - {{name: thau2, sites: [cho]}}
tickets: {{open_after: 30m, close_after: 10m}}
rules:
  night_light: {{enabled: false}}
"""


class Events:
    def __init__(self) -> None:
        self.all: list[HubEvent] = []

    def __call__(self, event: HubEvent) -> None:
        if event.type.startswith("ticket_"):
            self.all.append(event)

    def of(self, type: str) -> list[dict[str, Any]]:
        return [{"device": e.device, "site": e.site, **e.data} for e in self.all if e.type == type]


@pytest.fixture
async def sims() -> AsyncIterator[tuple[UpsSimulator, RelayBoardSimulator]]:
    """Two APC UPS units (Modbus units 1 and 2) and a relay board (unit 1), on loopback."""
    ups = UpsSimulator(models={1: "apc_smt", 2: "apc_smt"}, port=0)
    relays = RelayBoardSimulator(boards={1: "waveshare"}, port=0)
    await ups.start()
    await relays.start()
    yield ups, relays
    await relays.stop()
    await ups.stop()


async def _only_after(running: Any, clock: ManualClock, before: float, after: float,
                      happened: Callable[[], bool]) -> None:
    """``before`` seconds on the clock: not yet; ``after`` more: it happens."""
    clock.advance(before)
    await _settle(running)
    assert not happened()
    clock.advance(after)
    await _settle(running)
    await _wait(happened)


async def _settle(running: Any) -> None:
    """A check of the deadlines now (the hub's own runs every second), then a moment for its effects."""
    running.extra["tickets"].tick()
    await asyncio.sleep(0.1)


async def test_tickets_open_dedupe_ack_resolve_overdue_and_recover(tmp_path: Path, sims: Any) -> None:
    ups, relays = sims
    port = _free_port()
    gen = tmp_path / "gen"
    gen.mkdir()
    text = _yaml(port, ups.port, relays.port)
    pm = make_plugins()
    config = load_config(write_config(gen, text, SECRETS), pm)
    clock = ManualClock(START)
    events = Events()
    with GeneratedBroker(config, pm, tmp_path / "broker", port=port) as broker:
        thau1 = Recorder(broker.port, topics=(f"{BASE}/bridge/response/ticket/thau1", f"{BASE}/site/kp3/tickets"),
                         username="thau1", password=SECRETS["thau1"])
        thau2 = Recorder(broker.port, topics=(f"{BASE}/bridge/response/ticket/thau2", f"{BASE}/site/+/tickets"),
                         username="thau2", password=SECRETS["thau2"])
        async with hub_from_yaml(text, gen, plugins=pm, secrets=SECRETS, clock=clock) as running:
            hub = running.hub
            hub.add_listener(Listener(on_event=events))
            await _wait(lambda: all(hub.availability.get(d) for d in ("ups-kp3", "ups-cho", "light-kp3")))
            await _wait(lambda: hub.site_states["kp3"].get("power") == "ok")
            # the retained (empty) list of each site
            empty = await asyncio.to_thread(thau1.wait_topic, f"{BASE}/site/kp3/tickets", lambda j: True)
            assert empty == {"site": "kp3", "count": 0, "tickets": []}

            # the light's board stops answering: offline, while the UPS says mains are fine
            relays.board(1).dead = True
            await _wait(lambda: hub.availability.get("light-kp3") is False)
            await _only_after(running, clock, 29 * 60, 61, lambda: len(events.of("ticket_opened")) == 1)
            opened = events.of("ticket_opened")[0]
            assert opened["fault"] == "offline" and opened["kind"] == "light" and opened["device"] == "light-kp3"
            assert opened["site"] == "kp3" and opened["contractor"] == "thau1"
            t_open = datetime.fromisoformat(opened["opened"])
            assert datetime.fromisoformat(opened["due"]) - t_open == timedelta(hours=2)
            assert opened["message"]  # in the hub's language
            number = opened["ticket"]
            listed = await asyncio.to_thread(thau1.wait_topic, f"{BASE}/site/kp3/tickets",
                                             lambda j: j["count"] == 1)
            assert listed["tickets"][0]["id"] == number and listed["tickets"][0]["fault"] == "offline"

            # one ticket per device and fault: it stays one while the fault lasts, and a short
            # return (under close_after) does not close it
            clock.advance(40 * 60)
            await _settle(running)
            relays.board(1).dead = False
            await _wait(lambda: hub.availability.get("light-kp3") is True)
            clock.advance(5 * 60)
            await _settle(running)
            relays.board(1).dead = True
            await _wait(lambda: hub.availability.get("light-kp3") is False)
            clock.advance(31 * 60)
            await _settle(running)
            assert len(events.of("ticket_opened")) == 1 and events.of("ticket_resolved") == []

            # an officer may not even publish the request; the broker refuses it
            officer = Client(broker.port, "an", SECRETS["an"])
            assert not (await asyncio.to_thread(officer.connect)).is_failure
            for topic in (f"{BASE}/bridge/request/ticket/an", f"{BASE}/bridge/request/ticket/thau1",
                          f"{BASE}/bridge/request/ticket"):
                rc = await asyncio.to_thread(officer.publish, topic, json.dumps({"action": "ack",
                                                                                 "ticket": number}))
                assert rc.value == NOT_AUTHORIZED, topic
            officer.close()
            # ... nor publish under another contractor's name
            other = Client(broker.port, "thau2", SECRETS["thau2"])
            assert not (await asyncio.to_thread(other.connect)).is_failure
            rc = await asyncio.to_thread(other.publish, f"{BASE}/bridge/request/ticket/thau1", "{}")
            assert rc.value == NOT_AUTHORIZED
            other.close()
            # the other site's contractor may ask on their own topic: the hub refuses (sites)
            thau2.publish(f"{BASE}/bridge/request/ticket/thau2",
                          json.dumps({"action": "ack", "ticket": number, "transaction": "x1"}))
            refused = await asyncio.to_thread(thau2.wait_topic, f"{BASE}/bridge/response/ticket/thau2",
                                              lambda j: j.get("transaction") == "x1")
            assert refused["status"] == "error"
            # nor does thau2 see kp3's list (the broker's ACL)
            assert all(m.topic != f"{BASE}/site/kp3/tickets" for m in thau2.messages)
            # the hub refuses an officer even if a broker let the request through
            per_user = hub.requests.per_user("ticket")
            assert per_user is not None
            with pytest.raises(TicketRefused, match="officer"):
                await per_user({"action": "ack", "ticket": number}, user="an")
            with pytest.raises(TicketRefused):  # strict, as commands are: "1" is not 1
                await per_user({"action": "ack", "ticket": str(number)}, user="thau1")
            assert events.of("ticket_acknowledged") == []

            # the site's contractor acknowledges it
            thau1.publish(f"{BASE}/bridge/request/ticket/thau1",
                          json.dumps({"action": "ack", "ticket": number, "note": "đang tới", "transaction": "a1"}))
            ack = await asyncio.to_thread(thau1.wait_topic, f"{BASE}/bridge/response/ticket/thau1",
                                          lambda j: j.get("transaction") == "a1")
            assert ack["status"] == "ok", ack
            assert ack["data"]["ack_by"] == "thau1" and ack["data"]["acknowledged"]
            await _wait(lambda: len(events.of("ticket_acknowledged")) == 1)
            assert events.of("ticket_acknowledged")[0]["by"] == "thau1"
            await asyncio.to_thread(thau1.wait_topic, f"{BASE}/site/kp3/tickets",
                                    lambda j: j["count"] == 1 and j["tickets"][0]["ack_by"] == "thau1")

            # the deadline (2 h after opening) passes: ticket_overdue, once
            clock.set(t_open + timedelta(hours=2, seconds=1))
            await _wait(lambda: len(events.of("ticket_overdue")) == 1)
            overdue = events.of("ticket_overdue")[0]
            assert overdue["ticket"] == number and overdue["contractor"] == "thau1"
            clock.advance(3600)
            await _settle(running)
            assert len(events.of("ticket_overdue")) == 1

            # the light answers again; 10 minutes later the ticket closes as recovered
            relays.board(1).dead = False
            await _wait(lambda: hub.availability.get("light-kp3") is True)
            await _only_after(running, clock, 9 * 60, 61, lambda: len(events.of("ticket_resolved")) == 1)
            closed = events.of("ticket_resolved")[0]
            assert closed["resolution"] == "recovered" and closed["within_deadline"] is False
            assert closed["ticket"] == number and closed["fault"] == "offline"
            await asyncio.to_thread(thau1.wait_topic, f"{BASE}/site/kp3/tickets", lambda j: j["count"] == 0)

            # the UPS asks for a new battery: a ticket, resolved by the contractor with a note
            ups.set_state(1, replace_battery=True)
            await _wait(lambda: hub.states["ups-kp3"].get("replace_battery") is True)
            clock.advance(31 * 60)
            await _wait(lambda: len(events.of("ticket_opened")) == 2)
            battery = events.of("ticket_opened")[1]
            assert battery["fault"] == "replace_battery" and battery["kind"] == "ups"
            assert (datetime.fromisoformat(battery["due"]) - datetime.fromisoformat(battery["opened"])
                    == timedelta(hours=72))
            thau1.publish(f"{BASE}/bridge/request/ticket/thau1",
                          json.dumps({"action": "resolve", "ticket": battery["ticket"], "transaction": "r0"}))
            no_note = await asyncio.to_thread(thau1.wait_topic, f"{BASE}/bridge/response/ticket/thau1",
                                              lambda j: j.get("transaction") == "r0")
            assert no_note["status"] == "error"
            thau1.publish(f"{BASE}/bridge/request/ticket/thau1",
                          json.dumps({"action": "resolve", "ticket": battery["ticket"],
                                      "note": "thay ắc quy mới", "transaction": "r1"}))
            done = await asyncio.to_thread(thau1.wait_topic, f"{BASE}/bridge/response/ticket/thau1",
                                           lambda j: j.get("transaction") == "r1")
            assert done["status"] == "ok" and done["data"]["resolution"] == "resolved"
            resolved = events.of("ticket_resolved")[1]
            assert resolved["resolution"] == "resolved" and resolved["by"] == "thau1"
            assert resolved["note"] == "thay ắc quy mới" and resolved["within_deadline"] is True
            # a ticket closed is closed: acting on it again is refused
            with pytest.raises(TicketRefused):
                await per_user({"action": "ack", "ticket": battery["ticket"]}, user="thau1")

            # the audit trail: who did what
            assert hub.history is not None
            await asyncio.to_thread(hub.history.flush)
            audit = [(a["user"], a["result"], a["command"]["ticket"]["action"]) for a in hub.history.audit()
                     if "ticket" in a["command"]]
            assert ("thau2", "rejected", "ack") in audit and ("an", "rejected", "ack") in audit
            assert ("thau1", "ok", "ack") in audit and ("thau1", "ok", "resolve") in audit
            assert ("thau1", "rejected", "resolve") in audit
            stored = [e["type"] for e in hub.history.events() if e["type"].startswith("ticket_")]
            assert stored.count("ticket_opened") == 2 and stored.count("ticket_resolved") == 2
        thau1.close()
        thau2.close()


async def test_tickets_survive_a_restart_and_the_cli_acts(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          mosquitto: Any, sims: Any) -> None:
    """An open ticket survives a hub restart (and its overdue is not sent twice); ``anninh tickets``
    lists it, acknowledges it through the running hub and resolves it with no hub running."""
    ups, _relays = sims
    text = f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}"}}
sites: [{{id: kp3}}, {{id: cho}}]
devices:
  - {{id: ups-cho, platform: ups_modbus, site: cho, host: 127.0.0.1, port: {ups.port}, unit: 2, model: apc_smt,
      poll_interval: 0.3, timeout: 0.5}}
  - {{id: ups-kp3, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {ups.port}, unit: 1, model: apc_smt,
      poll_interval: 0.3, timeout: 0.5}}
users:
  - {{name: thau2, role: contractor, password: pw2}}
  - {{name: an, role: officer, password: pw3}}
contractors:
  - {{name: thau2, sites: [cho], deadlines: {{ups: 1h}}}}
tickets: {{open_after: 90s, close_after: 60}}
rules:
  night_light: {{enabled: false}}
"""
    clock = ManualClock(START)
    events = Events()
    config_path = tmp_path / "config.yaml"
    async with hub_from_yaml(text, tmp_path, clock=clock) as running:
        hub = running.hub
        hub.add_listener(Listener(on_event=events))
        await _wait(lambda: hub.availability.get("ups-cho") is True and hub.availability.get("ups-kp3") is True)
        ups.set_state(2, dead=True)  # ups-cho stops answering; kp3's power says nothing about cho
        await _wait(lambda: hub.availability.get("ups-cho") is False)
        clock.advance(91)
        await _wait(lambda: len(events.of("ticket_opened")) == 1)
        number = events.of("ticket_opened")[0]["ticket"]
        assert events.of("ticket_opened")[0]["contractor"] == "thau2"
        clock.advance(3600)
        await _wait(lambda: len(events.of("ticket_overdue")) == 1)
        # ups-kp3 stops answering 60 s before the hub stops: 60 of its 90 s towards a ticket
        ups.set_state(1, dead=True)
        await _wait(lambda: hub.availability.get("ups-kp3") is False)
        clock.advance(60)
        await _settle(running)
        assert len(events.of("ticket_opened")) == 1

    # the hub is stopped: the ticket is in the database, open, its overdue sent
    db = TicketDB(tmp_path / "data" / "history.db")
    [row] = db.tickets()
    db.close()
    assert row.id == number and row.is_open and row.overdue_sent == 1

    events2 = Events()
    async with hub_from_yaml(text, tmp_path, clock=clock) as running:
        hub = running.hub
        hub.add_listener(Listener(on_event=events2))
        await _wait(lambda: hub.availability.get("ups-kp3") is False)
        rec = Recorder(mosquitto.port, topics=(f"{BASE}/site/cho/tickets",))
        listed = await asyncio.to_thread(rec.wait_topic, f"{BASE}/site/cho/tickets", lambda j: j["count"] == 1)
        assert listed["tickets"][0]["id"] == number and listed["tickets"][0]["overdue"] is True
        rec.close()
        # ups-kp3 is still down: its fault kept its start, 31 s more make the 90 s
        await _only_after(running, clock, 20, 11, lambda: len(events2.of("ticket_opened")) == 1)
        assert events2.of("ticket_opened")[0]["device"] == "ups-kp3"
        clock.advance(600)
        await _settle(running)
        assert events2.of("ticket_overdue") == []  # ups-cho's was sent before the restart

        # the command line lists it (in Vietnamese by default) ...
        assert await asyncio.to_thread(anninh, ["tickets", "-c", str(config_path)]) == 0
        out = capsys.readouterr().out
        assert f"#{number}" in out and "ups-cho" in out and "Nhà thầu" in out and "quá hạn" in out
        # ... an officer may not act on it, the contractor acknowledges it through the running hub
        assert await asyncio.to_thread(anninh, ["tickets", "ack", str(number), "--by", "an",
                                                "-c", str(config_path)]) == 1
        assert await asyncio.to_thread(anninh, ["tickets", "ack", str(number), "--by", "thau2",
                                                "-c", str(config_path)]) == 0
        assert len(events2.of("ticket_acknowledged")) == 1
        assert events2.of("ticket_acknowledged")[0]["by"] == "thau2"
        capsys.readouterr()

    # with no hub running, the command line resolves it itself and writes the event
    assert await asyncio.to_thread(anninh, ["tickets", "resolve", str(number), "--by", "thau2",
                                            "-c", str(config_path)]) == 1  # a note is needed
    assert await asyncio.to_thread(anninh, ["tickets", "resolve", str(number), "--by", "thau2", "--note",
                                            "thay nguồn", "-c", str(config_path)]) == 0
    assert f"#{number}" in capsys.readouterr().out  # "Đã đóng phiếu #1."
    assert await asyncio.to_thread(anninh, ["tickets", "-c", str(config_path)]) == 0
    assert f"#{number}" not in capsys.readouterr().out
    assert await asyncio.to_thread(anninh, ["tickets", "-c", str(config_path), "--all", "--site", "cho"]) == 0
    assert f"#{number}" in capsys.readouterr().out
    from hub.storage import History

    history = History(tmp_path / "data" / "history.db")
    try:
        resolved = history.events(type="ticket_resolved")
        audit = [(a["user"], a["result"]) for a in history.audit() if "ticket" in a["command"]]
    finally:
        history.close()
    assert len(resolved) == 1 and resolved[0]["resolution"] == "resolved" and resolved[0]["by"] == "thau2"
    assert resolved[0]["note"] == "thay nguồn" and resolved[0]["message"]
    assert audit == [("an", "rejected"), ("thau2", "ok"), ("thau2", "rejected"), ("thau2", "ok")]


def test_contractors_config_errors_and_one_list_of_sites(tmp_path: Path) -> None:
    """Errors name file, line and field; a contractor's sites are one list, used by the ACL too."""
    from hub.config import ConfigError
    from hub.security import device_facts, plan_acl

    bad = write_config(tmp_path, """
sites: [{id: kp3}, {id: cho}]
users:
  - {name: thau1, role: contractor, password: a}
  - {name: an, role: officer, password: b}
  - {name: thau3, role: contractor, password: c, sites: [cho]}
contractors:
  - {name: thau1, sites: [kp3, nowhere]}
  - {name: an}
  - {name: bob}
  - {name: thau3, sites: [kp3]}
""")
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    lines = str(err.value).splitlines()
    assert f"{bad}:8: contractors[0].sites[1]: unknown site 'nowhere' (defined sites: kp3, cho)" in lines
    assert f"{bad}:9: contractors[1].name: user 'an' has role officer, not contractor" in lines
    assert any(line.startswith(f"{bad}:10: contractors[2].name: unknown user 'bob'") for line in lines)
    assert any(line.startswith(f"{bad}:6: users[2].sites: the sites of contractor 'thau3'") for line in lines)
    assert len(lines) == 4
    duration = write_config(tmp_path, """
tickets: {open_after: 2d}
""")
    with pytest.raises(ConfigError, match=r"config.yaml:2: tickets.open_after: bad duration '2d'"):
        load_config(duration)

    good = write_config(tmp_path, """
mqtt: {username: hub, password: hub-pw}
sites: [{id: kp3}, {id: cho}]
users:
  - {name: thau1, role: contractor, password: a}
  - {name: an, role: officer, password: b}
contractors:
  - {name: thau1, sites: [kp3], deadlines: {camera: 90s, recorder: 30m, ups: 3600}}
tickets: {open_after: 90s, close_after: 2h}
""")
    config = load_config(good)
    assert config.user("thau1") is not None and config.user("thau1").sites == ["kp3"]  # type: ignore[union-attr]
    c = config.contractors[0]
    assert (c.deadlines.camera, c.deadlines.recorder, c.deadlines.ups, c.deadlines.light) == (90, 1800, 3600, 72 * 3600)
    assert (config.tickets.open_after, config.tickets.close_after) == (90, 7200)
    acl = {e.name: e for e in plan_acl(config, device_facts(config, None))}
    assert "anninh/site/kp3/tickets" in acl["thau1"].read and "anninh/site/cho/tickets" not in acl["thau1"].read
    assert "anninh/bridge/request/ticket/thau1" in acl["thau1"].write
    assert "anninh/bridge/response/ticket/thau1" in acl["thau1"].read
    assert not any("ticket" in t for t in acl["an"].write)


def kp3_yaml(mqtt_port: int, ups_port: int, relay_port: int) -> str:
    """One site kp3 with its UPS and its light on the simulators (the tests add contractors, tickets, rules)."""
    return f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt_port}"}}
sites: [{{id: kp3}}]
devices:
  - {{id: ups-kp3, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {ups_port}, unit: 1, model: apc_smt,
      poll_interval: 0.3, timeout: 0.5}}
  - {{id: light-kp3, platform: lighting, site: kp3, driver: modbus_coil, host: 127.0.0.1, port: {relay_port},
      unit: 1, channel: 0, poll_interval: 0.3, timeout: 0.5}}"""


async def test_no_ticket_while_the_site_has_no_power(tmp_path: Path, mosquitto: Any, sims: Any) -> None:
    """A light offline during its site's power cut is no fault; once mains are back and it is still
    offline, it is one."""
    ups, relays = sims
    text = kp3_yaml(mosquitto.port, ups.port, relays.port) + """
contractors:
  - {name: thau1}
tickets: {open_after: 30m}
rules:
  night_light: {enabled: false}
"""
    clock = ManualClock(START)
    events = Events()
    async with hub_from_yaml(text, tmp_path, clock=clock) as running:
        hub = running.hub
        hub.add_listener(Listener(on_event=events))
        await _wait(lambda: hub.availability.get("light-kp3") is True and hub.site_states["kp3"]["power"] == "ok")
        ups.set_state(1, mains=False)
        await _wait(lambda: hub.site_states["kp3"]["power"] == "lost")
        relays.board(1).dead = True  # the house's power is cut: the relay board is dark
        await _wait(lambda: hub.availability.get("light-kp3") is False)
        clock.advance(3 * 3600)
        await _settle(running)
        assert events.of("ticket_opened") == []
        ups.set_state(1, mains=True)  # mains back, the board still dead: now it is a fault
        await _wait(lambda: hub.site_states["kp3"]["power"] == "ok")
        await _only_after(running, clock, 29 * 60, 61, lambda: len(events.of("ticket_opened")) == 1)
        [opened] = events.of("ticket_opened")
        assert opened["device"] == "light-kp3" and opened["fault"] == "offline" and opened["contractor"] == "thau1"
        assert opened["detail"]  # what the hub saw: the driver's error


async def test_recorder_faults_open_their_own_tickets(tmp_path: Path, mosquitto: Any, sims: Any) -> None:
    """A recorder (the Hikvision simulator) with a failing disk and too few days of footage: one
    ticket per fault, with the recorder's deadline; the disk replaced, its ticket closes, the other stays."""
    from plugins.hikvision.simulator import HikvisionSimulator

    ups, _relays = sims
    nvr = HikvisionSimulator("nvr", channels=2, password="Nvr-pw-1")
    nvr.set_recordings(1, 31)
    nvr.set_recordings(2, 12)
    await nvr.start()
    text = f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}"}}
sites: [{{id: post}}]
devices:
  - {{id: ups-post, platform: ups_modbus, site: post, host: 127.0.0.1, port: {ups.port}, unit: 1, model: apc_smt,
      poll_interval: 0.3, timeout: 0.5}}
  - {{id: nvr1, platform: hikvision, site: post, host: 127.0.0.1, port: {nvr.port}, password: Nvr-pw-1, kind: nvr,
      poll_interval: 0.3, timeout: 2, event_stream: false, retention_interval: 1}}
contractors:
  - {{name: thau1, deadlines: {{recorder: 12h}}}}
tickets: {{open_after: 10m, close_after: 5m}}
rules:
  night_light: {{enabled: false}}
"""
    clock = ManualClock(START)
    events = Events()
    try:
        async with hub_from_yaml(text, tmp_path, clock=clock) as running:
            hub = running.hub
            hub.add_listener(Listener(on_event=events))
            await _wait(lambda: hub.states.get("nvr1", {}).get("retention_days") == 12)
            nvr.set_disk(1, status="error")
            await _wait(lambda: any(d.get("status") == "error" for d in hub.states["nvr1"].get("disks") or []))
            await _only_after(running, clock, 9 * 60, 61, lambda: len(events.of("ticket_opened")) == 2)
            opened = {e["fault"]: e for e in events.of("ticket_opened")}
            assert set(opened) == {"disk_error", "retention_low"}
            for e in opened.values():
                assert e["device"] == "nvr1" and e["kind"] == "recorder" and e["contractor"] == "thau1"
                assert datetime.fromisoformat(e["due"]) - datetime.fromisoformat(e["opened"]) == timedelta(hours=12)
            nvr.set_disk(1, status="ok")
            await _wait(lambda: all(d.get("status") == "ok" for d in hub.states["nvr1"].get("disks") or []))
            await _only_after(running, clock, 4 * 60, 61, lambda: len(events.of("ticket_resolved")) == 1)
            [closed] = events.of("ticket_resolved")
            assert closed["fault"] == "disk_error" and closed["resolution"] == "recovered"
            assert closed["within_deadline"] is True
            clock.advance(3600)
            await _settle(running)
            assert len(events.of("ticket_resolved")) == 1  # footage is still short: that ticket stays open
    finally:
        await nvr.stop()


async def test_a_relay_that_does_not_follow(tmp_path: Path, mosquitto: Any, sims: Any) -> None:
    """relay_mismatch is known from its event only: the ticket opens after open_after, and closes once
    a command is carried out without a mismatch and close_after has passed."""
    ups, relays = sims
    text = kp3_yaml(mosquitto.port, ups.port, relays.port) + """
tickets: {open_after: 30m, close_after: 10m}
rules:
  night_light: {enabled: false}
"""
    clock = ManualClock(START)
    events = Events()
    async with hub_from_yaml(text, tmp_path, clock=clock) as running:
        hub = running.hub
        hub.add_listener(Listener(on_event=events))
        await _wait(lambda: hub.availability.get("light-kp3") is True)
        relays.ignore_writes = True
        await hub.command("light-kp3", {"state": "ON"})
        await _only_after(running, clock, 29 * 60, 61, lambda: len(events.of("ticket_opened")) == 1)
        [opened] = events.of("ticket_opened")
        assert opened["fault"] == "relay_mismatch" and opened["kind"] == "light" and "contractor" not in opened
        assert datetime.fromisoformat(opened["due"]) - datetime.fromisoformat(opened["opened"]) == timedelta(hours=72)
        await hub.command("light-kp3", {"state": "ON"})  # still not following: the fault stays
        clock.advance(3600)
        await _settle(running)
        assert events.of("ticket_resolved") == []
        relays.ignore_writes = False
        await hub.command("light-kp3", {"state": "ON"})
        await _only_after(running, clock, 9 * 60, 61, lambda: len(events.of("ticket_resolved")) == 1)
        assert events.of("ticket_resolved")[0]["resolution"] == "recovered"


async def test_kill_9_keeps_the_ticket_and_its_event(tmp_path: Path, mosquitto: Any, sims: Any) -> None:
    """The hub as a real process (real clock, open_after 1 s): SIGKILL once the ticket's retained list is
    out; the ticket and its ticket_opened event are in the history, and the restarted hub does not open
    it again."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys

    ups, relays = sims
    relays.board(1).dead = True
    cfg = write_config(tmp_path, kp3_yaml(mosquitto.port, ups.port, relays.port) + """
tickets: {open_after: 1, close_after: 10m}
rules:
  night_light: {enabled: false}
""")
    rec = await asyncio.to_thread(Recorder, mosquitto.port, (f"{BASE}/site/kp3/tickets",))

    def opened_rows() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        db = sqlite3.connect(f"file:{tmp_path / 'data' / 'history.db'}?mode=ro", uri=True)
        try:
            return (db.execute("SELECT id, device, fault, resolved FROM tickets").fetchall(),
                    db.execute("SELECT device, data FROM events WHERE type = 'ticket_opened'").fetchall())
        finally:
            db.close()

    for run in (1, 2):
        mark = rec.count()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "hub.cli", "-q", "run", "-c", str(cfg),
                                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            listed = await asyncio.to_thread(rec.wait_topic, f"{BASE}/site/kp3/tickets", lambda j: j["count"] == 1,
                                             30, mark)
            if run == 2:
                await asyncio.sleep(2.5)  # the restarted hub's checks: it must not open the ticket again
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.wait_for(proc.wait(), 10)
        tickets, events = opened_rows()
        assert tickets == [(1, "light-kp3", "offline", None)] and listed["tickets"][0]["id"] == 1
        assert len(events) == 1 and events[0][0] == "light-kp3" and json.loads(events[0][1])["ticket"] == 1
    rec.close()
