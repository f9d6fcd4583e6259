"""Footage export (issue 10): the Hikvision simulator's recordings over real loopback sockets,
through the driver's search and download, into a signed evidence package; `verify` catches every
kind of tampering. Frames carry their recorder time as a block pattern (hub.camera.simfootage), so
the tests read which second each end of the MP4 shows."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import os
import shutil
import signal
import stat
import sys
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import av
import pytest

from hub.api import DeviceInfo, Driver
from hub.camera.simfootage import read_stamp, seconds_of_day
from hub.cli import main as cli_main
from hub.config import load_config
from hub.export.package import verify
from hub.export.run import ExportError, ExportRequest, export, export_from_driver, find_gaps
from plugins.dahua.simulator import DahuaSimulator
from plugins.hikvision.simulator import HikvisionSimulator
from tests.support.hubrun import make_plugins, write_config

PW = "Ev1dence:pw/2026"
DAY = datetime(2026, 11, 30)


def at(hms: str) -> datetime:
    h, m, s = (int(x) for x in hms.split(":"))
    return DAY.replace(hour=h, minute=m, second=s)


@pytest.fixture(scope="module")
def footage_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One cache of generated recording files for the whole module (same files, same bytes)."""
    return tmp_path_factory.mktemp("footage")


def nvr(footage_dir: Path, *spans: tuple[str, str], **kw: Any) -> HikvisionSimulator:
    sim = HikvisionSimulator("nvr", channels=2, password=PW, footage_dir=footage_dir, **kw)
    for a, b in spans:
        sim.add_footage(1, at(a), at(b))
    return sim


def config_for(tmp: Path, sim: HikvisionSimulator, password: str = PW, audio: str = "aac") -> Path:
    return write_config(tmp, f"""
        hub:
          name: Cong an xa Test
          data_dir: {tmp / 'data'}
        export:
          audio: {audio}
        mqtt:
          server: mqtt://127.0.0.1:1
        devices:
          - id: nvr1
            platform: hikvision
            site: post
            host: 127.0.0.1
            port: {sim.port}
            password: !secret nvr
            timeout: 3
          - id: cam-cho
            platform: hikvision
            host: 127.0.0.1
            port: 1
            password: !secret nvr
            recorder: nvr1
            recorder_channel: 1
        sites:
          - id: post
        """, secrets={"nvr": password})


def stamps(mp4: Path) -> list[int]:
    with av.open(str(mp4)) as c:
        return [read_stamp(f.to_ndarray(format="bgr24"))[0] for f in c.decode(video=0)]


def served_bytes(sim: HikvisionSimulator, name: str) -> bytes:
    """What the simulator serves for a whole file (its stored file, IMKH header included)."""
    ff = sim.footage.by_name(name)
    assert ff is not None
    return ff.path.read_bytes()


@contextlib.asynccontextmanager
async def served(sim: HikvisionSimulator) -> AsyncIterator[HikvisionSimulator]:
    """``sim`` started, stopped after."""
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


async def run_export(tmp: Path, sim: HikvisionSimulator, start: str, end: str, progress: Any = None,
                     **kw: Any) -> Any:
    plugins = make_plugins()
    config = load_config(config_for(tmp, sim, kw.pop("password", PW), kw.pop("audio", "aac")), plugins)
    request = ExportRequest(device=kw.pop("device", "nvr1"), start=at(start), end=at(end), out_dir=tmp / "out",
                            case="VV-2026-117", reason="va cham giao thong", requested_by="an", **kw)
    return await export(config, plugins, request, progress)


# ---------------------------------------------------------------------- the whole path
async def test_five_minutes_with_a_recorder_90_s_fast_and_a_dropped_download(
        tmp_path: Path, footage_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sim = nvr(footage_dir, ("19:01:00", "19:09:00"))
    sim.set_clock_skew(90)
    sim.drop_download_after(200_000, times=2)  # two connections break mid-file
    reports: list[tuple[str, float]] = []
    monkeypatch.setattr("hub.export.run.PROGRESS_STEPS", 4)  # a report per quarter of the bytes, not per chunk
    await sim.start()
    try:
        result = await run_export(tmp_path, sim, "19:01:30", "19:06:30", lambda m, f: reports.append((m, f)))
    finally:
        await sim.stop()
    fractions = [f for _, f in reports]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert 2 <= sum(m == "downloading" for m, _ in reports) <= 5  # of 23 chunks (64 KiB) in 5 files
    pkg = result.path
    assert pkg.is_dir() and not list((tmp_path / "out").glob("*.part"))
    m = json.loads((pkg / "manifest.json").read_bytes())
    assert m["clock_skew_s"] == 90
    assert m["requested"] == {"start": "2026-11-30T19:01:30+07:00", "end": "2026-11-30T19:06:30+07:00"}
    assert m["gaps"] == [] and result.complete
    assert m["device"]["id"] == "nvr1" and m["device"]["serial"] == sim.serial and m["device"]["model"] == sim.model
    assert m["device"]["firmware"] == sim.firmware and m["device"]["site"] == "post"
    assert (m["case"], m["reason"], m["requested_by"], m["channel"]) == ("VV-2026-117", "va cham giao thong", "an", 1)
    # recorder time = hub time + 90 s: files 19:03 .. 19:08 on the recorder
    originals = [f for f in m["files"] if f["kind"] == "original"]
    assert [f["recorder_start"][11:] for f in originals] == ["19:03:00", "19:04:00", "19:05:00", "19:06:00",
                                                            "19:07:00"]
    for f in originals:  # the bytes exactly as the recorder holds them, despite the broken connections
        data = (pkg / f["path"]).read_bytes()
        assert data[:4] == b"IMKH"
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert data == served_bytes(sim, f["path"].split("/")[1].rsplit("_", 1)[0])
    assert sim.downloads >= len(originals) + 2
    (mp4,) = [f for f in m["files"] if f["kind"] == "mp4"]
    assert (mp4["codec"], mp4["width"], mp4["height"]) == ("h264", 320, 180)
    assert 299 <= mp4["duration_s"] <= 301.2
    seen = stamps(pkg / mp4["path"])
    # the picture shows the recorder's clock: the requested seconds + 90 s (±1 s: keyframe start)
    assert seconds_of_day(at("19:03:00")) - 1 <= seen[0] <= seconds_of_day(at("19:03:00"))
    assert seconds_of_day(at("19:07:59")) <= seen[-1] <= seconds_of_day(at("19:08:00"))
    assert m["recorded"]["start"] == "2026-11-30T19:01:30+07:00"
    assert m["recorded"]["end"] == "2026-11-30T19:06:30+07:00"
    assert any("audio (pcm_alaw) transcoded to AAC" in n for n in m["notes"])
    with av.open(str(pkg / mp4["path"])) as c:  # the recorder's G.711 is in the MP4 as AAC, over the whole clip
        (audio,) = c.streams.audio
        assert audio.codec_context.name == "aac" and audio.codec_context.sample_rate == 8000
        samples = sum(f.samples for f in c.decode(audio=0))
    assert abs(samples / 8000 - mp4["duration_s"]) < 0.5
    problems, _ = verify(pkg)
    assert problems == []


async def test_a_recorder_set_to_another_timezone_is_not_taken_for_a_drifting_one(tmp_path: Path,
                                                                                footage_dir: Path) -> None:
    """A recorder left on UTC+8 (a Chinese factory default) beside a hub on UTC+7, its clock
    right: its files are an hour later on its own wall clock. The window moves by the hour, the
    skew stays 0, the offset is recorded apart with a note."""
    async with served(nvr(footage_dir, ("20:01:00", "20:04:00"), tz_offset_hours=8)) as sim:
        result = await run_export(tmp_path, sim, "19:01:30", "19:03:30")
    m = result.manifest
    assert abs(m["clock_skew_s"]) <= 1 and m["recorder_utc_offset"] == "+08:00"
    assert m["recorded"] == {"start": "2026-11-30T19:01:30+07:00", "end": "2026-11-30T19:03:30+07:00"}
    assert result.complete and any("UTC+08:00" in note and "not drift" in note for note in m["notes"])
    (mp4,) = (result.path / f["path"] for f in m["files"] if f["kind"] == "mp4")
    seen = stamps(mp4)  # the picture shows the recorder's own time
    assert (seen[0], seen[-1]) == (seconds_of_day(at("20:01:30")), seconds_of_day(at("20:03:29")))


async def test_gaps_are_listed_and_each_stretch_gets_its_mp4(tmp_path: Path, footage_dir: Path) -> None:
    sim = nvr(footage_dir, ("19:01:00", "19:03:00"), ("19:05:00", "19:07:00"))
    await sim.start()
    try:
        result = await run_export(tmp_path, sim, "19:02:00", "19:07:30", device="cam-cho", audio="drop")
    finally:
        await sim.stop()
    m = result.manifest
    assert m["camera"] == "cam-cho" and m["device"]["id"] == "nvr1"
    assert m["gaps"] == [{"start": "2026-11-30T19:03:00+07:00", "end": "2026-11-30T19:05:00+07:00"},
                         {"start": "2026-11-30T19:07:00+07:00", "end": "2026-11-30T19:07:30+07:00"}]
    mp4s = [f for f in m["files"] if f["kind"] == "mp4"]
    assert len(mp4s) == 2
    first, second = (stamps(result.path / f["path"]) for f in mp4s)
    assert (first[0], first[-1]) == (seconds_of_day(at("19:02:00")), seconds_of_day(at("19:02:59")))
    assert (second[0], second[-1]) == (seconds_of_day(at("19:05:00")), seconds_of_day(at("19:06:59")))
    assert m["recorded"] == {"start": "2026-11-30T19:02:00+07:00", "end": "2026-11-30T19:07:00+07:00"}
    assert any("audio (pcm_alaw) is not in the MP4" in n for n in m["notes"])  # export.audio: drop
    with av.open(str(result.path / mp4s[0]["path"])) as c:
        assert not c.streams.audio


async def dahua_export(tmp: Path, sim: DahuaSimulator, request: ExportRequest) -> Any:
    """Start ``sim``, export ``request`` from it (device ``xvr``), stop it."""
    await sim.start()
    try:
        cfg = write_config(tmp, f"""
            hub:
              data_dir: {tmp / 'data'}
            devices:
              - id: xvr
                platform: dahua
                host: 127.0.0.1
                port: {sim.port}
                password: {PW!r}
                timeout: 3
            """)
        plugins = make_plugins()
        return await export(load_config(cfg, plugins), plugins, request)
    finally:
        await sim.stop()


async def test_five_minutes_from_a_dahua_nvr_in_dav(tmp_path: Path, footage_dir: Path) -> None:
    # a recorder that ignores Range: the resumed download skips what it already has
    sim = DahuaSimulator("nvr", channels=4, password=PW, footage_dir=footage_dir / "dahua", range_support=False)
    sim.add_footage(2, at("19:01:00"), at("19:04:00"))
    sim.add_footage(2, at("19:05:00"), at("19:07:00"))
    sim.drop_download_after(150_000)
    result = await dahua_export(tmp_path, sim, ExportRequest(
        device="xvr", channel=2, start=at("19:01:30"), end=at("19:06:30"), out_dir=tmp_path / "out", requested_by="an"))
    m = result.manifest
    assert m["device"]["model"] == sim.model and m["device"]["serial"] == sim.serial and m["channel"] == 2
    assert abs(m["clock_skew_s"]) <= 1
    assert m["gaps"] == [{"start": "2026-11-30T19:04:00+07:00", "end": "2026-11-30T19:05:00+07:00"}]
    originals = [f for f in m["files"] if f["kind"] == "original"]
    assert len(originals) == 5 and all(f["container"] == "dav" for f in originals)
    for f in originals:
        data = (result.path / f["path"]).read_bytes()
        assert data[:4] == b"DHAV" and data[-8:-4] == b"dhav"
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert (f["codec"], f["width"], f["height"]) == ("h264", 320, 180)
    served = {hashlib.sha256(ff.path.read_bytes()).hexdigest() for ff in sim._dav_paths.values()}
    assert {f["sha256"] for f in originals} == served  # byte for byte what the recorder holds
    assert sim.downloads == len(originals) + 1
    first, second = (stamps(result.path / f["path"]) for f in m["files"] if f["kind"] == "mp4")
    assert (first[0], first[-1]) == (seconds_of_day(at("19:01:30")), seconds_of_day(at("19:03:59")))
    assert (second[0], second[-1]) == (seconds_of_day(at("19:05:00")), seconds_of_day(at("19:06:29")))
    assert verify(result.path)[0] == []


async def test_a_dahua_firmware_without_rpc_loadfile_is_downloaded_by_time(tmp_path: Path, footage_dir: Path) -> None:
    """RPC_Loadfile refused (404): each file comes by its time span from loadfile.cgi?action=startLoad,
    a broken one resumed by Range, the bytes exactly those the recorder holds."""
    sim = DahuaSimulator("nvr", channels=4, password=PW, footage_dir=footage_dir / "dahua", rpc_loadfile=False)
    sim.add_footage(2, at("19:01:00"), at("19:04:00"))
    sim.drop_download_after(150_000)
    result = await dahua_export(tmp_path, sim, ExportRequest(
        device="xvr", channel=2, start=at("19:01:30"), end=at("19:03:30"), out_dir=tmp_path / "out"))
    originals = [f for f in result.manifest["files"] if f["kind"] == "original"]
    held = {hashlib.sha256(ff.path.read_bytes()).hexdigest()
            for ff in (sim.footage.get(2, n, s, e) for n, s, e in sim.footage.files(2))}
    assert len(originals) == 3 and {f["sha256"] for f in originals} == held
    assert sim.downloads == 3 + 1  # one by-time download broke and was resumed
    assert result.complete and verify(result.path)[0] == []
    (mp4,) = (result.path / f["path"] for f in result.manifest["files"] if f["kind"] == "mp4")
    seen = stamps(mp4)
    assert (seen[0], seen[-1]) == (seconds_of_day(at("19:01:30")), seconds_of_day(at("19:03:29")))


def test_find_gaps_tolerates_file_boundaries() -> None:
    from hub.api import Segment

    segs = [Segment(1, at("10:00:00"), at("10:00:59"), "a", "a", "ps"),
            Segment(1, at("10:01:00"), at("10:02:00"), "b", "b", "ps")]
    assert find_gaps(segs, at("10:00:00"), at("10:02:00")) == []
    assert find_gaps(segs, at("09:59:00"), at("10:03:00")) == [(at("09:59:00"), at("10:00:00")),
                                                              (at("10:02:00"), at("10:03:00"))]


# ---------------------------------------------------------------------- refusals: one clear line
async def test_refusals(tmp_path: Path, footage_dir: Path) -> None:
    sim = nvr(footage_dir, ("19:01:00", "19:02:00"))
    await sim.start()
    try:
        with pytest.raises(ExportError, match="no footage on nvr1 channel 1"):
            await run_export(tmp_path, sim, "20:00:00", "20:05:00")
        with pytest.raises(ExportError, match=r"window too long: 13 h \(export.max_hours is 12 h\)"):
            await run_export(tmp_path, sim, "06:00:00", "19:00:00")
        with pytest.raises(ExportError, match="end of the window must be after its start"):
            await run_export(tmp_path, sim, "19:05:00", "19:01:00")
        with pytest.raises(ExportError, match="wrong username or password") as exc:
            await run_export(tmp_path, sim, "19:01:00", "19:02:00", password="wrong")
        assert PW not in str(exc.value)
    finally:
        await sim.stop()
    with pytest.raises(ExportError, match="recorder unreachable"):
        await run_export(tmp_path, sim, "19:01:00", "19:02:00")  # stopped: connection refused
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


async def test_an_onvif_camera_without_profile_g_says_it_cannot_export(tmp_path: Path) -> None:
    from plugins.generic_onvif.simulator import OnvifSimulator

    async with OnvifSimulator(password=PW) as sim:
        cfg = write_config(tmp_path, f"""
            hub: {{data_dir: {tmp_path / 'data'}}}
            devices:
              - {{id: cam1, platform: generic_onvif, host: 127.0.0.1, port: {sim.port}, username: admin,
                  password: {json.dumps(PW)}, timeout: 3}}
            """)
        plugins = make_plugins()
        request = ExportRequest(device="cam1", start=at("10:00:00"), end=at("10:05:00"), out_dir=tmp_path / "out")
        with pytest.raises(ExportError, match=r"^cam1: this device cannot export recordings"):
            await export(load_config(cfg, plugins), plugins, request)


async def test_a_driver_without_recording_search_cannot_export(tmp_path: Path) -> None:
    from hub.api import DeviceConfig
    from hub.api.detached import DetachedContext

    dev = DeviceConfig(id="onvif1", platform="generic_onvif")
    from zoneinfo import ZoneInfo
    tz = ZoneInfo("Asia/Ho_Chi_Minh")
    request = ExportRequest(device="onvif1", start=at("10:00:00"), end=at("10:05:00"), out_dir=tmp_path / "out")
    with pytest.raises(ExportError, match="onvif1: this device cannot export recordings"):
        await export_from_driver(Driver(dev, DetachedContext(dev, tz=tz)), dev, DeviceInfo(), 1, request, tz=tz,
                                 hub_name="t", data_dir=tmp_path / "data")


# ---------------------------------------------------------------------- verify
@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory, footage_dir: Path) -> tuple[Path, Path]:
    """Two small packages signed by the same hub key."""
    tmp = tmp_path_factory.mktemp("pkgs")

    async def make() -> tuple[Path, Path]:
        sim = nvr(footage_dir, ("19:01:00", "19:03:00"))
        await sim.start()
        try:
            a = await run_export(tmp, sim, "19:01:10", "19:01:40")
            b = await run_export(tmp, sim, "19:02:10", "19:02:30")
        finally:
            await sim.stop()
        return a.path, b.path

    return asyncio.run(make())


def copy(pkg: Path, tmp: Path) -> Path:
    return Path(shutil.copytree(pkg, tmp / pkg.name))


def verify_cli(pkg: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, str]:
    capsys.readouterr()
    code = cli_main(["--lang", "en", "export", "verify", str(pkg), *extra])
    return code, capsys.readouterr().out


def test_verify_ok_and_with_the_pinned_key(packages: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    a, _ = packages
    code, out = verify_cli(a, capsys)
    assert code == 0 and out.startswith("OK")
    data_dir = a.parent.parent / "data"
    pinned = data_dir / "keys" / "export_ed25519.pub.pem"
    assert pinned.read_bytes() == (a / "hub_public_key.pem").read_bytes()
    assert stat.S_IMODE((data_dir / "keys" / "export_ed25519.pem").stat().st_mode) == 0o600
    code, out = verify_cli(a, capsys, "--key", str(pinned))
    assert code == 0 and out.startswith("OK")


def test_verifications_go_into_the_audit_table(packages: tuple[Path, Path], tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from hub.storage import History

    a, _ = packages
    cfg = a.parent.parent / "config.yaml"
    tampered = copy(a, tmp_path)
    (tampered / "video" / "extra.txt").write_text("x")
    assert verify_cli(a, capsys, "-c", str(cfg), "--by", "investigator")[0] == 0
    assert verify_cli(tampered, capsys, "-c", str(cfg), "--by", "investigator")[0] == 1
    history = History(a.parent.parent / "data" / "history.db")
    rows = [r for r in history.audit() if "export_verify" in r["command"]]
    history.close()
    assert [(r["user"], r["device"], r["result"]) for r in rows][-2:] == [
        ("investigator", "nvr1", "verified"), ("investigator", "nvr1", "failed")]
    assert rows[-1]["command"]["export_verify"]["package_id"] == a.name
    assert "video/extra.txt: added" in rows[-1]["error"]


def test_verify_names_every_changed_added_and_removed_file(packages: tuple[Path, Path], tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    pkg = copy(packages[0], tmp_path)
    m = json.loads((pkg / "manifest.json").read_bytes())
    original = next(f["path"] for f in m["files"] if f["kind"] == "original")
    mp4 = next(f["path"] for f in m["files"] if f["kind"] == "mp4")
    with (pkg / original).open("r+b") as f:  # one byte changed in the middle
        f.seek(5000)
        byte = f.read(1)
        f.seek(5000)
        f.write(bytes([byte[0] ^ 0x01]))
    (pkg / mp4).unlink()
    (pkg / "video" / "extra.mp4").write_bytes(b"not evidence")
    code, out = verify_cli(pkg, capsys)
    assert code == 1
    assert f"{original}: changed" in out
    assert f"{mp4}: removed" in out
    assert "video/extra.mp4: added" in out
    assert "signature" not in out  # the manifest itself is intact


def test_verify_catches_an_edited_or_swapped_manifest_and_a_foreign_key(
        packages: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = packages
    edited = copy(a, tmp_path / "edited")
    data = (edited / "manifest.json").read_bytes().replace(b'"VV-2026-117"', b'"VV-2026-118"')
    (edited / "manifest.json").write_bytes(data)
    code, out = verify_cli(edited, capsys)
    assert code == 1 and "manifest.sig: bad signature" in out

    swapped = copy(a, tmp_path / "swapped")  # b's manifest and signature, both genuine, on a's files
    for name in ("manifest.json", "manifest.sig"):
        shutil.copy(b / name, swapped / name)
    code, out = verify_cli(swapped, capsys)
    assert code == 1 and "signature" not in out
    assert "changed" in out or "removed" in out
    assert "added" in out

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hub.export.keys import public_pem
    from hub.export.package import seal
    forged = copy(a, tmp_path / "forged")  # re-signed by someone else's key, with that key inside
    manifest = json.loads((forged / "manifest.json").read_bytes())
    manifest["case"] = "forged"
    seal(forged, manifest, Ed25519PrivateKey.generate())
    assert verify(forged)[0] == []  # self-consistent: only the pinned key tells
    pinned = a.parent.parent / "data" / "keys" / "export_ed25519.pub.pem"
    code, out = verify_cli(forged, capsys, "--key", str(pinned))
    assert code == 1 and "manifest.sig: bad signature" in out and "hub_public_key.pem: not the key given" in out
    other = tmp_path / "other.pem"
    other.write_bytes(public_pem(Ed25519PrivateKey.generate().public_key()))
    code, out = verify_cli(a, capsys, "--key", str(other))
    assert code == 1 and "bad signature" in out


def test_the_signature_is_plain_ed25519_over_the_manifest_bytes(packages: tuple[Path, Path]) -> None:
    """What an investigator does without the hub: any Ed25519 implementation and sha256."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    a, _ = packages
    sig = base64.b64decode((a / "manifest.sig").read_bytes())
    assert len(sig) == 64
    key = load_pem_public_key((a / "hub_public_key.pem").read_bytes())
    assert isinstance(key, Ed25519PublicKey)
    key.verify(sig, (a / "manifest.json").read_bytes())
    for f in json.loads((a / "manifest.json").read_bytes())["files"]:
        assert hashlib.sha256((a / f["path"]).read_bytes()).hexdigest() == f["sha256"]


# ---------------------------------------------------------------------- the command line
async def test_cli_export_exit_codes_and_key(tmp_path: Path, footage_dir: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    sim = nvr(footage_dir, ("19:01:00", "19:03:00"), ("19:05:00", "19:06:00"))
    await sim.start()
    cfg = config_for(tmp_path, sim)

    async def anninh(*args: str) -> tuple[int, str, str]:
        """The real command line, in a thread (it runs its own event loop; the simulator keeps
        serving on this one)."""
        capsys.readouterr()
        code = await asyncio.to_thread(cli_main, ["--lang", "en", *args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    try:
        code, out, err = await anninh("export", "-c", str(cfg), "--device", "nvr1", "--start", "2026-11-30 19:01:20",
                                      "--end", "2026-11-30 19:02:00", "--by", "an", "-o", str(tmp_path / "out"))
        assert code == 0, err
        pkg = Path(out.strip())
        assert pkg.parent == tmp_path / "out" and (pkg / "manifest.json").exists()
        code, out, err = await anninh("export", "-c", str(cfg), "--device", "nvr1", "--start", "2026-11-30 19:02:30",
                                      "--end", "2026-11-30 19:05:30", "-o", str(tmp_path / "out"))
        assert code == 2, err
        assert "gap: no footage from 2026-11-30 19:03:00 to 2026-11-30 19:05:00" in err
        code, out, err = await anninh("export", "-c", str(cfg), "--device", "nvr1", "--start", "2026-11-30 21:00",
                                      "--end", "2026-11-30 21:01", "-o", str(tmp_path / "out"))
        assert code == 1 and err.strip().splitlines()[-1].startswith("error: no footage on nvr1")
        code, out, err = await anninh("export", "-c", str(cfg), "--device", "nvr1", "-o", str(tmp_path / "out"))
        assert code == 1 and "missing --start, --end" in err
        code, out, err = await anninh("export", "key", "-c", str(cfg))
        assert code == 0
        assert out.startswith("-----BEGIN PUBLIC KEY-----")
        pem = out[:out.index("-----END PUBLIC KEY-----") + 25].encode()
        assert pem == (pkg / "hub_public_key.pem").read_bytes()
        assert out.strip().splitlines()[-1].startswith("SHA256:")
        code, out, err = await anninh("export", "verify", str(pkg))
        assert code == 0 and out.startswith("OK")
    finally:
        await sim.stop()


async def kill_9_mid_download(sim: HikvisionSimulator, proc: asyncio.subprocess.Process) -> None:
    """Once the recorder ``sim`` (started with ``freeze_download_after``) hangs mid-download, kill -9
    ``proc`` (a hub or ``anninh export``). (Freezing it from here once a download had begun came too
    late once downloads got faster: the two small files were in before the freeze.)"""
    for _ in range(1500):
        if sim.frozen:
            break
        await asyncio.sleep(0.01)
    assert sim.frozen, "the export never got to the middle of a download"
    await asyncio.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()


async def test_kill_9_mid_export_leaves_no_complete_looking_package(tmp_path: Path, footage_dir: Path) -> None:
    sim = nvr(footage_dir, ("19:01:00", "19:03:00"))
    sim.freeze_download_after(100_000)  # mid-file: the first file is about 760 KB
    await sim.start()
    cfg = config_for(tmp_path, sim)
    out = tmp_path / "out"
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hub.cli", "export", "-c", str(cfg), "--device", "nvr1", "--start",
            "2026-11-30 19:01:00", "--end", "2026-11-30 19:03:00", "-o", str(out),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
        await kill_9_mid_download(sim, proc)
        sim.unfreeze()
    finally:
        await sim.stop()
    entries = list(out.iterdir())
    assert entries and all(e.name.endswith(".part") for e in entries)
    assert not any((e / "manifest.json").exists() for e in entries)


@pytest.mark.skipif(shutil.which("openssl") is None or shutil.which("sha256sum") is None,
                    reason="needs the openssl and sha256sum commands (docs/export.md's investigator check)")
def test_investigator_check_without_the_hub(packages: tuple[Path, Path], tmp_path: Path) -> None:
    """The commands docs/export.md gives an investigator: sha256sum and openssl, no Python."""
    import subprocess

    a, _ = packages
    sig = tmp_path / "manifest.sig.bin"
    sig.write_bytes(base64.b64decode((a / "manifest.sig").read_bytes()))
    ok = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "hub_public_key.pem", "-rawin",
                         "-in", "manifest.json", "-sigfile", str(sig)], cwd=a, capture_output=True, text=True)
    assert ok.returncode == 0 and "Signature Verified Successfully" in ok.stdout
    sums = tmp_path / "SHA256SUMS"
    sums.write_text("".join(f"{f['sha256']}  {f['path']}\n"
                            for f in json.loads((a / "manifest.json").read_bytes())["files"]))
    assert subprocess.run(["sha256sum", "--quiet", "-c", str(sums)], cwd=a).returncode == 0
    der = subprocess.run(["openssl", "pkey", "-pubin", "-in", "hub_public_key.pem", "-outform", "DER"], cwd=a,
                         capture_output=True).stdout
    from hub.export.keys import fingerprint, load_public_pem
    assert "SHA256:" + hashlib.sha256(der).hexdigest() == fingerprint(
        load_public_pem((a / "hub_public_key.pem").read_bytes()))
    edited = copy(a, tmp_path / "edited")
    (edited / "manifest.json").write_bytes((edited / "manifest.json").read_bytes().replace(b"an", b"am", 1))
    bad = subprocess.run(["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "hub_public_key.pem", "-rawin",
                          "-in", "manifest.json", "-sigfile", str(sig)], cwd=edited, capture_output=True, text=True)
    assert bad.returncode != 0


def test_overlapping_files_are_copied_once(footage_dir: Path, tmp_path: Path) -> None:
    """A recorder that lists one moment in two files: the MP4 keeps time moving forward."""
    from hub.api import Segment
    from hub.export.remux import Original, remux
    from plugins.hikvision.simfootage import ps_store

    store = ps_store(footage_dir)  # the module's cache: the files the simulators serve
    a = store.get(1, 0, at("19:01:00"), at("19:02:00"))
    b = store.get(1, 1, at("19:02:00"), at("19:03:00"))
    originals = [Original(a.path, Segment(1, a.start, a.end, "a", "a", "ps")),
                 Original(b.path, Segment(1, at("19:01:30"), at("19:02:30"), "b", "b", "ps"))]  # 30 s overlap
    result = remux(originals, at("19:01:00"), at("19:03:00"), tmp_path / "o.mp4")
    assert result is not None and result.frames == 300 + 150
    seen = stamps(tmp_path / "o.mp4")
    assert len(seen) == 450 and seen[0] == seconds_of_day(at("19:01:00"))
    with av.open(str(tmp_path / "o.mp4")) as c:
        pts = [p.pts for p in c.demux(video=0) if p.pts is not None]
    assert pts == sorted(pts) and len(set(pts)) == len(pts)


def top_level_boxes(mp4: Path) -> list[str]:
    """The MP4's top-level box types in file order (ISO/IEC 14496-12 box headers)."""
    boxes = []
    with mp4.open("rb") as f:
        while header := f.read(8):
            size, kind = int.from_bytes(header[:4], "big"), header[4:].decode("latin-1")
            if size == 1:
                size = int.from_bytes(f.read(8), "big") - 8
            boxes.append(kind)
            f.seek(size - 8, os.SEEK_CUR)
    return boxes


def test_the_mp4_index_is_written_once_in_front(footage_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The index (moov) goes in front of the media without a second pass over the file (space
    reserved for it); an index that outgrows that space is caught and the copy made again with
    FFmpeg's faststart pass, with the same frames."""
    from hub.api import Segment
    from hub.export import remux as rx
    from plugins.hikvision.simfootage import ps_store

    store = ps_store(footage_dir)
    a = store.get(1, 0, at("19:01:00"), at("19:02:00"))
    originals = [rx.Original(a.path, Segment(1, a.start, a.end, "a", "a", "ps"))]
    window = (at("19:01:10"), at("19:01:40"))
    first = rx.remux(iter(originals), *window, tmp_path / "reserved.mp4")
    boxes = top_level_boxes(tmp_path / "reserved.mp4")
    assert boxes.index("moov") < boxes.index("mdat") and "free" in boxes
    assert "outgrew" not in caplog.text

    monkeypatch.setattr(rx, "MOOV_BYTES_PER_FRAME", 0)
    monkeypatch.setattr(rx, "MOOV_SLACK", 64)
    second = rx.remux(iter(originals), *window, tmp_path / "faststart.mp4")
    assert "outgrew the space reserved" in caplog.text
    boxes = top_level_boxes(tmp_path / "faststart.mp4")
    assert boxes.index("moov") < boxes.index("mdat")
    assert first is not None and second is not None and first.frames == second.frames == 150
    assert stamps(tmp_path / "reserved.mp4") == stamps(tmp_path / "faststart.mp4")
    assert first.mp4["duration_s"] == second.mp4["duration_s"]


def test_the_remux_child_starts_without_the_config_models() -> None:
    """The remux child (``python -m hub.export.remux``, one per export on a running hub) loads
    PyAV but not hub.api and pydantic: a third of a second of CPU less at each export's start."""
    import subprocess

    code = ("import sys, hub.export.remux; heavy = {'hub.api', 'pydantic'} & set(sys.modules); "
            "print(sorted(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip() == "[]"


async def test_a_hub_killed_mid_export_takes_its_export_process_with_it(tmp_path: Path, footage_dir: Path) -> None:
    """A running hub exports in a child process (hub.export.child); kill -9 the hub mid-download:
    the child sees its pipe close, removes the .part directory and ends. It does not go on to seal
    a package the hub's audit table never records, even once the recorder answers again."""
    sim = nvr(footage_dir, ("19:01:00", "19:03:00"))
    sim.freeze_download_after(100_000)  # mid-file: the first file is about 760 KB
    await sim.start()
    cfg = config_for(tmp_path, sim)
    out = tmp_path / "out"
    hub = ("import asyncio, sys\n"
           "from datetime import datetime\n"
           "from pathlib import Path\n"
           "from hub.export.child import export_in_child\n"
           "from hub.export.run import ExportRequest\n"
           "def progress(message, fraction):\n"
           "    print(message, flush=True)\n"
           f"request = ExportRequest(device='nvr1', start=datetime(2026, 11, 30, 19, 1), "
           f"end=datetime(2026, 11, 30, 19, 3), out_dir=Path({str(out)!r}))\n"
           f"asyncio.run(export_in_child(Path({str(cfg)!r}), request, progress))\n")
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", hub, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
            cwd=Path(__file__).parent.parent)
        assert proc.stdout is not None
        await kill_9_mid_download(sim, proc)
        # the recorder still hangs (its read timeout is 9 s): only the closed pipe can end the child
        for _ in range(250):
            if out.exists() and not any(out.iterdir()):
                break
            await asyncio.sleep(0.02)
        cleaned = list(out.iterdir())
        sim.unfreeze()  # an export process still alive would now finish the package
        await asyncio.sleep(1.0)
    finally:
        await sim.stop()
    assert cleaned == [] and list(out.iterdir()) == []


def test_g711_audio_decoded_in_bulk_gives_the_same_aac(footage_dir: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorder's G.711 is decoded a second at a time with a table made by FFmpeg's decoder:
    the AAC track is byte for byte the one FFmpeg's decoder and resampler feed, packet by packet."""
    from hub.api import Segment
    from hub.export import remux as rx
    from plugins.hikvision.simfootage import ps_store

    a = ps_store(footage_dir).get(1, 0, at("19:01:00"), at("19:02:00"))
    originals = [rx.Original(a.path, Segment(1, a.start, a.end, "a", "a", "ps"))]

    def aac_packets(name: str) -> list[bytes]:
        rx.remux(iter(originals), at("19:01:10"), at("19:01:50"), tmp_path / name)
        with av.open(str(tmp_path / name)) as c:
            assert c.streams.audio[0].codec_context.name == "aac"
            return [bytes(p) for p in c.demux(audio=0) if p.size]

    bulk = aac_packets("bulk.mp4")
    monkeypatch.setattr(rx, "G711", ())
    assert len(bulk) > 250 and bulk == aac_packets("per_packet.mp4")
