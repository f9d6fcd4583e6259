"""Issue 15: messages a person can act on, and recovery seen quickly.

Real parts: Mosquitto with a TLS listener (certificates from tests/certs.py) or a password file,
the UPS and Hikvision simulators over real sockets, the ``anninh`` command line in-process."""

from __future__ import annotations

import asyncio
import itertools
import logging
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from hub.cli import HubTimeFormatter, build_parser, main
from hub.core import Backoff
from hub.i18n import use_language
from hub.mqtt import BrokerAddress, MqttConnection
from plugins.hikvision.simulator import HikvisionSimulator
from plugins.ups_modbus.simulator import UpsSimulator
from tests.certs import CertAuthority, make_ca
from tests.support.hubrun import hub_from_yaml
from tests.support.mosquitto import Mosquitto, _free_port


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def rogue_ca(tmp_path_factory: pytest.TempPathFactory) -> CertAuthority:
    return make_ca(tmp_path_factory.mktemp("rogue"), name="rogue")


def _tls_broker(tmp_path: Path, ca: CertAuthority, *, require_certificate: bool = False) -> tuple[Mosquitto, int]:
    crt, key = ca.issue("server", "localhost", server=True)
    tls_port = _free_port()
    extra = (f"listener {tls_port} 127.0.0.1\ncafile {ca.ca}\ncertfile {crt}\nkeyfile {key}\n"
             f"require_certificate {'true' if require_certificate else 'false'}\n")
    workdir = tmp_path / "mosq"
    workdir.mkdir(exist_ok=True)
    return Mosquitto(workdir=workdir, extra=extra), tls_port


async def _problem(conn: MqttConnection, timeout: float = 10.0) -> str:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while conn.problem is None and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert conn.problem is not None, "no connection problem reported"
    return conn.problem


def _hub_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# ====================================================================== MQTT connection problems
async def test_tls_untrusted_certificate_says_tls_error_and_reason(tmp_path: Path, ca: CertAuthority,
                                                                   rogue_ca: CertAuthority,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    broker, tls_port = _tls_broker(tmp_path, ca)
    with broker:
        yaml_text = f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtts://127.0.0.1:{tls_port}", ca_file: "{rogue_ca.ca}"}}
"""
        with caplog.at_level(logging.WARNING):
            async with hub_from_yaml(yaml_text, tmp_path, connect_timeout=2.0) as running:
                problem = await _problem(running.bridge.conn)
                assert not running.bridge.conn.connected
        assert "TLS error" in problem and "certificate verify failed" in problem and "mqtt.ca_file" in problem
        logged = "\n".join(_hub_errors(caplog))
        assert "not reachable" not in logged and "unreachable" not in logged
        # the start-up warning says what happened, and the supervisor logs it once
        assert any("not connected yet" in m and "certificate verify failed" in m for m in _hub_errors(caplog))
        assert sum("certificate verify failed" in r.getMessage() for r in caplog.records if r.name == "hub.mqtt") == 1


async def test_tls_client_certificate_missing_is_named(tmp_path: Path, ca: CertAuthority) -> None:
    broker, tls_port = _tls_broker(tmp_path, ca, require_certificate=True)
    with broker:
        conn = MqttConnection(BrokerAddress("127.0.0.1", tls_port, True), ca_file=str(ca.ca))
        await conn.start()
        try:
            problem = await _problem(conn)
        finally:
            await conn.stop()
    assert "TLS error" in problem and "client certificate" in problem and "mqtt.cert_file" in problem, problem


async def test_wrong_mqtt_password_says_not_authorised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    workdir = tmp_path / "mosq"
    workdir.mkdir()
    passwd = workdir / "passwd"
    await asyncio.to_thread(subprocess.run, ["mosquitto_passwd", "-b", "-c", str(passwd), "hub", "the-right-one"],
                            check=True, capture_output=True, timeout=30)
    passwd.chmod(0o600)
    with Mosquitto(workdir=workdir, allow_anonymous=False, extra=f"password_file {passwd}") as broker:
        conn = MqttConnection(BrokerAddress("127.0.0.1", broker.port, False), username="hub",
                              password="Wrong-Pass-42")
        with caplog.at_level(logging.INFO):
            await conn.start()
            try:
                problem = await _problem(conn)
                await asyncio.sleep(2.5)  # a retry or two: logged once
            finally:
                await conn.stop()
        assert "not authorised: check mqtt.username/password" in problem
        assert not conn.connected
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert "Wrong-Pass-42" not in text and "unreachable" not in text
        assert sum("not authorised" in r.getMessage() for r in caplog.records) == 1
        # with the right password the same connection settles
        good = MqttConnection(BrokerAddress("127.0.0.1", broker.port, False), username="hub",
                              password="the-right-one")
        await good.start()
        try:
            assert await good.wait_connected(5) and good.problem is None
        finally:
            await good.stop()


async def test_nothing_listening_says_so(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    conn = MqttConnection(BrokerAddress("127.0.0.1", port, False))
    await conn.start()
    try:
        problem = await _problem(conn)
    finally:
        await conn.stop()
    assert f"connection refused by 127.0.0.1:{port}" in problem and "no MQTT broker listens there" in problem


async def test_socket_closed_while_writing_leaves_no_add_writer_traceback(tmp_path: Path) -> None:
    """The broker dies while the loop is busy; then a burst of publishes in one loop turn: the
    first is written at once (the kernel takes it, the dead peer answers with a reset), the rest
    wait for the turn's flush, whose write finds the connection reset and paho closes the socket
    there. That used to end in ``add_writer(None)``: ``ValueError: Invalid file object: None``."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    conn = None
    try:
        for _ in range(2):  # reproduced every time before the fix; twice to be sure
            broker = Mosquitto(workdir=tmp_path).start()
            conn = MqttConnection(BrokerAddress("127.0.0.1", broker.port, False))
            await conn.start()
            assert await conn.wait_connected(5)
            broker.kill()  # blocks the loop: the hub cannot hear of it before publishing
            for i in range(200):
                conn.publish(f"t/{i}", b"x" * 1000, qos=1)
            await asyncio.sleep(0.3)
            assert not conn.connected
            await conn.stop()
            conn = None
    finally:
        if conn is not None:
            await conn.stop()
        loop.set_exception_handler(previous)
    assert not errors, [str(e.get("exception") or e.get("message")) for e in errors]


async def test_broker_back_after_an_outage_longer_than_the_backoff_cap(tmp_path: Path) -> None:
    """Scaled down (cap 6 s instead of 30 s, probes every 0.5 s instead of 2 s): attempts at about
    0, 1, 3, 7 and 13 s; the broker is back at 8 s; the probe sees it at once, where the backoff
    alone would wait until the 13 s attempt."""
    port = _free_port()
    broker = Mosquitto(port=port, workdir=tmp_path).start()
    conn = MqttConnection(BrokerAddress("127.0.0.1", port, False))
    conn.max_backoff = 6.0
    conn.probe_interval = 0.5
    try:
        await conn.start()
        assert await conn.wait_connected(5)
        broker.stop()
        await asyncio.sleep(8.0)
        assert not conn.connected and conn.problem is not None and "connection refused" in conn.problem
        broker.start()
        t0 = asyncio.get_running_loop().time()
        assert await conn.wait_connected(5.0)
        took = asyncio.get_running_loop().time() - t0
        assert took < 2.5, f"reconnected {took:.1f} s after the broker came back"
    finally:
        await conn.stop()
        broker.stop()


# ====================================================================== devices
def _one_ups(mqtt_port: int, port: int, timeout: float) -> str:
    """A hub config with one APC UPS on ``port``, polled every 0.5 s."""
    return f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mqtt_port}", discovery: false}}
devices:
  - {{id: ups-kp3, platform: ups_modbus, host: 127.0.0.1, port: {port}, unit: 1, model: apc_smt,
      poll_interval: 0.5, timeout: {timeout}}}
"""


async def test_device_back_from_a_long_outage_is_seen_within_seconds(mosquitto: Any, tmp_path: Path) -> None:
    """A UPS simulator stopped long enough for the backoff to reach its cap (scaled: 6 s), then
    restarted on the same port: the TCP probe ends the wait, the hub does not sit out the cap."""
    sim = await UpsSimulator({1: "apc_smt"}, port=0).start()
    port = sim.port
    yaml_text = _one_ups(mosquitto.port, port, timeout=1)
    backoff = Backoff(initial=0.5, maximum=6.0, auth_minimum=1.0, probe_interval=0.5)
    try:
        async with hub_from_yaml(yaml_text, tmp_path, backoff=backoff) as running:
            hub = running.hub

            async def until(pred: Any, timeout: float) -> float:
                loop = asyncio.get_running_loop()
                t0 = loop.time()
                while not pred():
                    assert loop.time() - t0 < timeout, "timed out"
                    await asyncio.sleep(0.05)
                return loop.time() - t0

            await until(lambda: hub.availability.get("ups-kp3") is True, 10)
            await sim.stop()
            await until(lambda: hub.availability.get("ups-kp3") is False, 5)
            await asyncio.sleep(8.0)  # failures at about 0, 0.5, 1.5, 3.5, 7.5 s: the next wait is the cap
            sim = UpsSimulator({1: "apc_smt"}, port=port)
            await sim.start()
            took = await until(lambda: hub.availability.get("ups-kp3") is True, 10)
            assert took < 2.5, f"seen {took:.1f} s after the device came back"
    finally:
        await sim.stop()


async def test_open_port_with_a_silent_device_keeps_the_whole_backoff(mosquitto: Any, tmp_path: Path) -> None:
    """A gateway that accepts TCP but whose device never answers: the probe finds the port open,
    so it must not cut the backoff short (that would retry a dead device every probe interval)."""
    requests: list[float] = []  # when each connection sent its first Modbus request

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if await reader.read(1):
                requests.append(asyncio.get_running_loop().time())
                await reader.read()  # never answer; wait for the hub to give up and close
        finally:
            writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yaml_text = _one_ups(mosquitto.port, port, timeout=0.3)
    backoff = Backoff(initial=0.25, maximum=2.0, auth_minimum=1.0, probe_interval=0.25)
    try:
        async with hub_from_yaml(yaml_text, tmp_path, backoff=backoff):
            await asyncio.sleep(7.0)
    finally:
        server.close()
    gaps = [b - a for a, b in itertools.pairwise(requests)]
    # waits 0.25, 0.5, 1, 2, 2 (+ the 0.3 s timeout each): the last gaps are the 2 s cap
    assert len(requests) >= 4 and max(gaps) >= 1.9, gaps
    assert len(requests) <= 8, gaps


async def test_camera_refusing_the_password_is_not_a_site_cause(mosquitto: Any, tmp_path: Path) -> None:
    """The camera answers 401 (wrong password) while its neighbour, the site's UPS, is down: its
    cause is ``auth_refused``, never ``site_unreachable``; a neighbour that is truly unreachable
    at the same site still gets ``site_unreachable`` counted without the refusing camera."""
    cam = await HikvisionSimulator("camera", password="right-one").start()
    dead_port = _free_port()
    yaml_text = f"""
hub: {{data_dir: ./data}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: false}}
sites: [{{id: kp3}}]
devices:
  - {{id: cam-kp3, platform: hikvision, site: kp3, host: 127.0.0.1, port: {cam.port}, username: admin,
      password: wrong-pw, timeout: 2}}
  - {{id: cam2-kp3, platform: hikvision, site: kp3, host: 127.0.0.1, port: {dead_port}, username: admin,
      password: whatever, timeout: 1}}
  - {{id: ups-kp3, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {dead_port}, unit: 1,
      model: apc_smt, poll_interval: 0.5, timeout: 0.5}}
rules:
  offline_cause: {{settle: 0.5}}
  image_health: {{enabled: false}}
"""
    try:
        async with hub_from_yaml(yaml_text, tmp_path) as running:
            hub = running.hub
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while (hub.states["cam-kp3"].get("offline_cause") is None
                   or hub.states["cam2-kp3"].get("offline_cause") is None):
                assert loop.time() - t0 < 10, hub.states
                await asyncio.sleep(0.05)
            assert all(hub.availability[d] is False for d in ("cam-kp3", "cam2-kp3", "ups-kp3"))
            assert hub.states["cam-kp3"]["offline_cause"] == "auth_refused"
            assert "password" in hub.states["cam-kp3"]["offline_detail"]
            # the refusing camera was reached: the other camera is alone in not answering
            assert hub.states["cam2-kp3"]["offline_cause"] == "camera_down"
            assert cam.auth_failures >= 1
    finally:
        await cam.stop()


# ====================================================================== anninh check / command line
def _check(tmp_path: Path, yaml_text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    path.chmod(0o600)
    with pytest.raises(SystemExit) as exc:
        main(["--lang", "en", "check", "-c", str(path)])
    return int(exc.value.code or 0), capsys.readouterr().err.splitlines()


def test_check_host_with_port_bad_address_and_platform_typo(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_text = """\
sites: [{id: kp3}]
devices:
  - id: ups-kp3
    platform: ups_modbus
    host: 127.0.0.1:25020
    model: apc_smt
  - id: ups-kp4
    platform: ups_modbus
    host: 127.0.0.300
    model: apc_smt
  - id: light-kp3
    platfrom: lighting
    host: 192.168.1.80
  - id: cam-kp3
    platform: hikvision
    host: http://192.168.1.64
    password: x
"""
    code, err = _check(tmp_path, yaml_text, capsys)
    path = tmp_path / "config.yaml"
    assert code == 1
    assert (f"error: {path}:5: devices[0].host: '127.0.0.1:25020': the port goes in 'port:' "
            f"(host: 127.0.0.1, port: 25020)") in err, err
    assert (f"error: {path}:9: devices[1].host: '127.0.0.300' is not a valid IPv4 address "
            f"(four numbers 0-255 separated by dots)") in err, err
    assert f"error: {path}:12: devices[2].platfrom: unknown key; did you mean 'platform'?" in err, err
    assert any(line.startswith(f"error: {path}:16: devices[3].host: 'http://192.168.1.64': give only the address")
               for line in err), err
    assert err[-1] == f"4 error(s) in {path}"


def test_check_accepts_names_and_addresses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yaml_text = """\
devices:
  - {id: a, platform: ups_modbus, host: 192.168.1.50, model: apc_smt}
  - {id: b, platform: ups_modbus, host: ups-kp3.local, model: apc_smt}
  - {id: c, platform: ups_modbus, host: "fe80::1", model: apc_smt}
  - {id: d, platform: ups_modbus, host: gateway, port: 4196, model: apc_smt}
"""
    path = tmp_path / "config.yaml"
    path.write_text(yaml_text)
    path.chmod(0o600)
    assert main(["--lang", "en", "check", "-c", str(path)]) == 0, capsys.readouterr().err
    assert "OK (0 site(s), 4 device(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("argv", "verbose", "quiet"), [
    (["run", "-c", "x.yaml", "-v"], 1, False),
    (["-v", "run", "-c", "x.yaml"], 1, False),
    (["check", "-c", "x.yaml", "-q"], 0, True),
    (["-q", "check", "-c", "x.yaml"], 0, True),
    (["check", "-c", "x.yaml", "-vv"], 2, False),
    (["check", "-c", "x.yaml"], 0, False),
])
def test_verbosity_flags_before_or_after_the_command(argv: list[str], verbose: int, quiet: bool) -> None:
    args = build_parser().parse_args(argv)
    assert (args.verbose, args.quiet) == (verbose, quiet)


def test_check_quiet_after_the_command_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("sites: [{id: kp3}]\n")
    path.chmod(0o600)
    assert main(["--lang", "en", "check", "-c", str(path), "-q"]) == 0
    assert "OK (1 site(s)" in capsys.readouterr().out


@pytest.mark.parametrize(("command", "words"), [("run", "Ctrl-C or SIGTERM"), ("check", "file:line: field: problem")])
def test_run_and_check_help_describe_the_command(command: str, words: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with use_language("en"), pytest.raises(SystemExit):
        build_parser().parse_args([command, "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert words in out and "-v, --verbose" in out and "-q, --quiet" in out


# ====================================================================== one timezone
async def test_site_state_times_are_in_the_hubs_timezone(mosquitto: Any, tmp_path: Path) -> None:
    sim = await UpsSimulator({1: "apc_smt"}, port=0).start()
    yaml_text = f"""
hub: {{data_dir: ./data, timezone: Asia/Ho_Chi_Minh}}
mqtt: {{server: "mqtt://127.0.0.1:{mosquitto.port}", discovery: false}}
sites: [{{id: kp3}}]
devices:
  - {{id: ups-kp3, platform: ups_modbus, site: kp3, host: 127.0.0.1, port: {sim.port}, unit: 1,
      model: apc_smt, poll_interval: 0.25, timeout: 0.6}}
"""
    try:
        async with hub_from_yaml(yaml_text, tmp_path) as running:
            hub = running.hub
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            while hub.site_states["kp3"].get("power") != "ok":
                assert loop.time() - t0 < 10, hub.site_states
                await asyncio.sleep(0.05)
            sim.set_state(1, mains=False)
            while hub.site_states["kp3"].get("power") != "lost":
                assert loop.time() - t0 < 10, hub.site_states
                await asyncio.sleep(0.05)
            changed = hub.site_states["kp3"]["power_changed"]
            assert changed.endswith("+07:00"), changed
            assert abs((datetime.fromisoformat(changed) - hub.local_now()).total_seconds()) < 5
    finally:
        await sim.stop()


def test_log_times_are_in_the_hubs_timezone() -> None:
    formatter = HubTimeFormatter(ZoneInfo("Asia/Ho_Chi_Minh"))
    record = logging.LogRecord("hub", logging.INFO, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 3, 1, 17, 30, 5, tzinfo=ZoneInfo("UTC")).timestamp()
    assert formatter.format(record).startswith("2026-03-02 00:30:05 INFO    hub: hello")
