"""`anninh discover` against the simulator's WS-Discovery responder, on loopback only (unicast
probes to 127.0.0.1; nothing is sent to any other address)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from hub.cli import main as cli_main
from plugins.generic_onvif.discovery import DiscoveredDevice, build_probe, parse_probe_matches, probe, slug, snippet
from plugins.generic_onvif.simulator import OnvifSimulator

REPO = Path(__file__).resolve().parents[1]


async def test_probe_finds_the_simulator_on_loopback() -> None:
    async with OnvifSimulator(password="pw", discovery_port=0, name="Cổng UBND phường",
                              location="khu-pho-3") as sim:
        assert sim.discovery_port is not None  # bound when the simulator started
        found = await probe("127.0.0.1", sim.discovery_port, timeout=0.5)
        assert len(found) == 1  # two probes sent, answers de-duplicated
        dev = found[0]
        assert dev.endpoint == f"urn:uuid:{sim.endpoint_uuid}"
        assert dev.xaddrs == [f"http://127.0.0.1:{sim.port}/onvif/device_service"]
        assert dev.address == ("127.0.0.1", sim.port)
        assert dev.name == "Cổng UBND phường" and dev.hardware == "DS-2CD2143G2-I"
        assert dev.location == "city/khu-pho-3"
        assert "dn:NetworkVideoTransmitter" in dev.types
        assert sim.stats["probes"] == 2
        # a probe for some other device type gets no answer
        assert sim.probe_match(build_probe().replace(b"dn:NetworkVideoTransmitter", b"dn:Printer")) is None


async def _run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        # not `python -m hub.cli`: run as __main__, hub.cli would be a second module without the
        # commands that hub.discover registers (the installed `anninh` script imports hub.cli)
        sys.executable, "-c", "import sys; from hub.cli import main; sys.exit(main(sys.argv[1:]))",
        "--lang", "en", *args, cwd=REPO, env={**os.environ, **(env or {})},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_discover_prints_a_snippet_that_anninh_check_accepts(tmp_path: Path) -> None:
    async with OnvifSimulator(password="s3cret!", discovery_port=0, name="Cổng UBND phường",
                              clock_skew=900) as sim:
        rc, out, err = await _run_cli("discover", "--address", "127.0.0.1", "--port", str(sim.discovery_port),
                                      "--timeout", "0.5", "--username", "admin",
                                      env={"ANNINH_CAMERA_PASSWORD": "s3cret!"})
        assert rc == 0, err
        assert "s3cret!" not in out and "s3cret!" not in err
        assert "DS-2CD2143G2-I20220315AAWRJ12345678" in out  # serial read with the password (skew compensated)
        assert "- id: cam-cong-ubnd-phuong" in out
        assert "password: !secret cam-cong-ubnd-phuong_password" in out
        assert sim.stats["GetDeviceInformation"] == 1 and sim.stats["auth_failures"] == 0

    config = tmp_path / "config.yaml"
    config.write_text("hub:\n  name: test post\n  data_dir: ./data\n" + out)
    config.chmod(0o600)
    (tmp_path / "secrets.yaml").write_text('cam-cong-ubnd-phuong_password: "s3cret!"\n')
    (tmp_path / "secrets.yaml").chmod(0o600)
    assert cli_main(["check", "-c", str(config)]) == 0
    # and the snippet is what it claims: one generic_onvif device at the simulator's address
    loaded = yaml.load(out, Loader=_SecretLoader)
    assert loaded["devices"] == [{"id": "cam-cong-ubnd-phuong", "platform": "generic_onvif",
                                  "name": "Cổng UBND phường", "host": "127.0.0.1", "port": sim.port,
                                  "username": "admin", "password": "<secret cam-cong-ubnd-phuong_password>"}]


class _SecretLoader(yaml.SafeLoader):
    pass


def _secret(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return f"<secret {loader.construct_scalar(node)}>"


_SecretLoader.add_constructor("!secret", _secret)


async def test_discover_reports_nothing_found_and_wrong_password(tmp_path: Path) -> None:
    async with OnvifSimulator(password="right", discovery_port=0) as sim:
        port = sim.discovery_port
        rc, out, err = await _run_cli("discover", "--address", "127.0.0.1", "--port", str(port),
                                      "--timeout", "0.5", "--username", "admin", "--password", "wrong")
        assert rc == 0
        assert "could not read device information" in out and "NotAuthorized" in out
        assert "wrong" not in out.replace("wrong password", "")
    rc, out, err = await _run_cli("discover", "--address", "127.0.0.1", "--port", str(port), "--timeout", "0.3")
    assert rc == 1 and "no ONVIF device answered" in err and out == ""


def test_snippet_ids_are_unique_and_valid() -> None:
    scope = ["onvif://www.onvif.org/name/Đường%20Số%201"]
    devs = [DiscoveredDevice("a", ["http://10.0.0.5/onvif/device_service"], scopes=scope),
            DiscoveredDevice("b", ["http://10.0.0.6:8000/onvif/device_service"], scopes=scope),
            DiscoveredDevice("c", ["http://10.0.0.7/onvif/device_service"])]
    text = snippet(devs)
    loaded = yaml.load(text, Loader=_SecretLoader)
    assert [d["id"] for d in loaded["devices"]] == ["cam-duong-so-1", "cam-duong-so-1-2", "cam-10-0-0-7"]
    assert loaded["devices"][1]["port"] == 8000 and loaded["devices"][0]["port"] == 80
    assert slug("Nhà ông Tâm, khu phố 3") == "nha-ong-tam-khu-pho-3"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500) | st.text(max_size=300).map(
    lambda s: ("<e:Envelope xmlns:e='http://www.w3.org/2003/05/soap-envelope'><e:Body><ProbeMatches>"
               f"<ProbeMatch><XAddrs>{s}</XAddrs><Scopes>{s}</Scopes></ProbeMatch></ProbeMatches>"
               "</e:Body></e:Envelope>").encode()))
def test_probe_match_parser_never_crashes(blob: bytes) -> None:
    for dev in parse_probe_matches(blob):
        assert dev.xaddrs and all(x.startswith(("http://", "https://")) for x in dev.xaddrs)
        _ = dev.address, dev.name, dev.location  # never raise
