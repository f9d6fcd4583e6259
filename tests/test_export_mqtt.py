"""The export request over MQTT on a running hub, behind a real Mosquitto on the files
``anninh acl`` writes: an officer's request is answered with the package; a contractor's is
refused by the broker and again by the hub; events and the audit trail record the chain of
custody."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hub.config import load_config
from hub.export.package import verify
from hub.export.service import ExportRefused
from plugins.hikvision.simulator import HikvisionSimulator
from tests.certs import Client, GeneratedBroker
from tests.support.hubrun import hub_from_yaml, make_plugins, write_config
from tests.support.hubrun import wait_until as _wait
from tests.support.mosquitto import Mosquitto, _free_port
from tests.support.mqtt import Recorder

BASE = "anninh"
NOT_AUTHORIZED = 135
SECRETS = {"mqtt_password": "hub-Secret-1", "alice": "alice-pw-1", "cora": "cora-pw-4", "ian": "ian-pw-5",
           "nvr": "Nvr:pw/9"}


def _yaml(port: int, nvr_port: int) -> str:
    return f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt:
  server: "mqtt://127.0.0.1:{port}"
  username: hub
  password: !secret mqtt_password
sites: [{{id: kp3}}]
devices:
  - {{id: nvr1, platform: hikvision, site: kp3, host: 127.0.0.1, port: {nvr_port}, password: !secret nvr,
      kind: nvr, timeout: 3, event_stream: false}}
users:
  - {{name: alice, role: officer, password: !secret alice}}
  - {{name: cora, role: contractor, password: !secret cora}}
  - {{name: ian, role: installer, password: !secret ian}}
"""


async def test_officer_exports_over_mqtt_and_a_contractor_cannot(tmp_path: Path) -> None:
    sim = HikvisionSimulator("nvr", channels=2, password=SECRETS["nvr"])
    sim.add_footage(1, datetime(2026, 11, 30, 19, 1), datetime(2026, 11, 30, 19, 2))
    await sim.start()
    port = _free_port()
    gen = tmp_path / "gen"
    gen.mkdir()
    text = _yaml(port, sim.port)
    pm = make_plugins()
    config = load_config(write_config(gen, text, SECRETS), pm)
    try:
        with GeneratedBroker(config, pm, tmp_path / "broker", port=port) as broker:
            ian = Recorder(broker.port, username="ian", password=SECRETS["ian"])
            alice = Recorder(broker.port, topics=(f"{BASE}/bridge/response/export/alice",),
                             username="alice", password=SECRETS["alice"])
            async with hub_from_yaml(text, gen, plugins=pm, secrets=SECRETS) as running:
                hub = running.hub
                await _wait(lambda: hub.runners["nvr1"].connected)
                await asyncio.to_thread(alice.connected.wait, 5)

                # a contractor may not even publish the request: the broker refuses it
                cora = Client(broker.port, "cora", SECRETS["cora"])
                assert not (await asyncio.to_thread(cora.connect)).is_failure
                for topic in (f"{BASE}/bridge/request/export/cora", f"{BASE}/bridge/request/export/alice",
                              f"{BASE}/bridge/request/export"):
                    rc = await asyncio.to_thread(cora.publish, topic, '{"device": "nvr1"}')
                    assert rc.value == NOT_AUTHORIZED, topic
                cora.close()

                # the officer's request, naming someone else in the payload: the topic's name counts
                mark = ian.count()
                alice.publish(f"{BASE}/bridge/request/export/alice", json.dumps(
                    {"device": "nvr1", "channel": 1, "start": "2026-11-30 19:01:10", "end": "2026-11-30 19:01:50",
                     "case": "VV-1", "reason": "test", "user": "ian", "transaction": "t1"}))
                response = await asyncio.to_thread(alice.wait_topic, f"{BASE}/bridge/response/export/alice",
                                                   lambda j: j.get("transaction") == "t1", 30)
                assert response["status"] == "ok", response
                data = response["data"]
                pkg = Path(data["path"])
                assert pkg.name == data["package_id"] and data["complete"] is True
                assert pkg.parent == gen / "data" / "exports"
                assert verify(pkg)[0] == []
                manifest = json.loads((pkg / "manifest.json").read_bytes())
                assert manifest["requested_by"] == "alice" and manifest["case"] == "VV-1"
                assert manifest["device"]["serial"] == sim.serial
                started = await asyncio.to_thread(ian.wait_event, BASE, "export_started", after=mark)
                done = await asyncio.to_thread(ian.wait_event, BASE, "export_done", after=mark)
                assert started["user"] == done["user"] == "alice" and done["package_id"] == data["package_id"]
                progress = [e["percent"] for e in ian.events(BASE, "export_progress") if e.get("user") == "alice"]
                assert progress and progress[-1] == 100 and progress == sorted(progress)

                # the hub refuses a contractor even if a broker let the request through
                per_user = hub.requests.per_user("export")
                assert per_user is not None
                with pytest.raises(ExportRefused, match="role contractor may not export"):
                    await per_user({"device": "nvr1", "start": "2026-11-30 19:01:10",
                                    "end": "2026-11-30 19:01:50"}, user="cora")
                with pytest.raises(ExportRefused, match="bridge/request/export/<your user name>"):
                    await hub.requests["export"]({"device": "nvr1", "start": "2026-11-30 19:01:10",
                                                  "end": "2026-11-30 19:01:50"})
                assert hub.history is not None
                await asyncio.to_thread(hub.history.flush)
                rows = [(a["user"], a["result"]) for a in hub.history.audit()]
                assert rows == [("alice", "requested"), ("alice", "started"), ("alice", "done"),
                                ("cora", "rejected"), (None, "rejected")]
                done_row = hub.history.audit()[2]
                assert done_row["command"]["export"]["package_id"] == data["package_id"]
                assert done_row["command"]["export"]["manifest_sha256"] == done["manifest_sha256"]
            ian.close()
            alice.close()
    finally:
        await sim.stop()


async def test_one_export_per_recorder_and_a_clean_cancel(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """Two requests for one recorder run one after the other; stopping the hub mid-export leaves
    no package, only an export_failed event and an audit row."""
    from hub.core import Listener

    sim = HikvisionSimulator("nvr", channels=2, password=SECRETS["nvr"])
    sim.add_footage(1, datetime(2026, 11, 30, 19, 1), datetime(2026, 11, 30, 19, 3))
    await sim.start()
    text = f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "{mosquitto.url}"}}
devices:
  - {{id: nvr1, platform: hikvision, host: 127.0.0.1, port: {sim.port}, password: {json.dumps(SECRETS['nvr'])},
      kind: nvr, timeout: 3, event_stream: false}}
"""
    events: list[tuple[str, str | None]] = []
    try:
        async with hub_from_yaml(text, tmp_path) as running:
            hub = running.hub
            hub.add_listener(Listener(on_event=lambda e: events.append((e.type, e.data.get("user")))
                                      if e.type.startswith("export_") and e.type != "export_progress" else None))
            await _wait(lambda: hub.runners["nvr1"].connected)
            export = hub.requests["export"]  # no users in this config: any caller, no name
            window = {"device": "nvr1", "start": "2026-11-30 19:01:10", "end": "2026-11-30 19:02:50"}
            first, second = await asyncio.gather(export(dict(window)), export(dict(window)))
            assert first["package_id"] != second["package_id"]
            assert [t for t, _ in events] == ["export_started", "export_done", "export_started", "export_done"]

            sim.freeze()  # the recorder hangs in the middle of the next export; then the hub stops
            task: asyncio.Future[Any] = asyncio.ensure_future(export(dict(window)))
            await _wait(lambda: events[-1][0] == "export_started")
            await asyncio.sleep(0.3)
        assert task.cancelled() or isinstance(task.exception(), BaseException)
        sim.unfreeze()
        assert events[-1][0] == "export_failed"
        out = tmp_path / "data" / "exports"
        assert sorted(p.name for p in out.iterdir()) == sorted([first["package_id"], second["package_id"]])
    finally:
        await sim.stop()


async def test_stale_part_directories_are_removed_when_the_hub_starts(tmp_path: Path, mosquitto: Mosquitto,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A ``.part`` left by a hub killed during an export goes at the next start; one still being
    written (changed since the start, or locked by a live export), a sealed package and other
    files stay."""
    import os
    import time

    from hub.export.service import lock_part

    exports = tmp_path / "data" / "exports"
    stale = exports / "nvr1-ch01-20261130T190000-aaaaaa.part"
    (stale / "original").mkdir(parents=True)
    (stale / "original" / "ch01_0001").write_bytes(b"\0" * 1000)
    busy = exports / "nvr1-ch01-20261130T191000-bbbbbb.part"
    (busy / "original").mkdir(parents=True)
    (busy / "original" / "ch01_0002").write_bytes(b"\0" * 1000)
    sealed = exports / "nvr1-ch01-20261130T180000-cccccc"
    sealed.mkdir()
    (sealed / "manifest.json").write_text("{}")
    (exports / "notes.part").write_text("a file, not a package")
    paused = exports / "nvr1-ch01-20261130T192000-dddddd.part"  # a live export waiting on its recorder
    (paused / "original").mkdir(parents=True)
    hour_ago = time.time() - 3600
    for p in (stale / "original" / "ch01_0001", stale / "original", stale, sealed, sealed / "manifest.json",
              busy, busy / "original", paused, paused / "original"):
        os.utime(p, (hour_ago, hour_ago))
    lock = lock_part(paused)
    assert lock is not None
    soon = time.time() + 60  # written to after the hub's start: an export in progress
    os.utime(busy / "original" / "ch01_0002", (soon, soon))
    text = f"""
hub: {{name: Test post, data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}"}}
devices: []
"""
    caplog.set_level("WARNING", logger="hub.export")
    try:
        async with hub_from_yaml(text, tmp_path):
            await _wait(lambda: not stale.exists(), 5)
    finally:
        os.close(lock)
    assert busy.is_dir() and (busy / "original" / "ch01_0002").exists()
    assert paused.is_dir()
    assert (sealed / "manifest.json").exists() and (exports / "notes.part").is_file()
    assert [r.getMessage() for r in caplog.records if "unfinished" in r.getMessage()] == [
        f"removed {stale}: an export left unfinished when the hub stopped"]
