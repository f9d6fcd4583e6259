"""``anninh demo``: a whole commune on one machine.

An embedded MQTT broker, simulated devices of every plugin (UPS units of two models and a power
meter on one Modbus simulator, a relay board with the black-spot lights, Hikvision / Dahua / ONVIF
cameras and a Hikvision NVR), the hub with its default rules, a demo clock that runs fast, and a
live terminal view. A scripted evening plays by itself: dusk falls and the black-spot lights come
on, a host house loses power, an officer switches a light from the phone app (over MQTT, as a real
app would), power returns, a house without a UPS goes dark, and morning comes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import secrets
import signal
import sys
import tempfile
import textwrap
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.api import HubEvent
from hub.app import RunningHub, start_hub
from hub.broker import BrokerError, free_port, port_is_free
from hub.clock import ScaledClock
from hub.config import load_config
from hub.core import Backoff, Listener
from hub.plugins import load_plugins

log = logging.getLogger("hub.demo")
TZ = ZoneInfo("Asia/Ho_Chi_Minh")

SITES = [
    ("kp1-hung", "Nhà ông Hùng, khu phố 1", False),
    ("kp2-lan", "Nhà bà Lan, khu phố 2", False),
    ("kp3-tam", "Nhà ông Tâm, khu phố 3 (điểm đen)", True),
    ("cho-moi", "Ngã ba chợ mới (điểm đen)", True),
    ("kp4-binh", "Nhà anh Bình, khu phố 4", False),
    ("kp5-hoa", "Nhà chị Hoa, khu phố 5 (không có UPS)", False),
    ("post", "Công an phường (trụ sở)", False),
]


@dataclass
class Step:
    at: str  # demo-clock local time "HH:MM" (next day if earlier than the start)
    text: str
    action: Callable[[], Awaitable[None] | None] | None = None


class Demo:
    def __init__(self, speed: float, port: int, workdir: Path) -> None:
        self.speed = speed
        self.port = port
        self.dir = workdir
        self.sims: dict[str, Any] = {}
        self.notes: list[str] = []
        self.running: RunningHub | None = None
        self.events: deque[HubEvent] = deque(maxlen=14)
        self.narration: deque[tuple[str, str]] = deque(maxlen=6)
        self.officer: paho.Client | None = None
        start = datetime.now(TZ).replace(hour=17, minute=10, second=0, microsecond=0)
        self.clock = ScaledClock(start, speed)
        self.done = asyncio.Event()
        self.passwords = {name: secrets.token_urlsafe(9) for name in ("cam", "nvr", "onvif", "dahua")}

    # ------------------------------------------------------------------ simulators
    async def start_simulators(self) -> None:
        from plugins.lighting.simulator import RelayBoardSimulator
        from plugins.ups_modbus.simulator import UpsSimulator

        self.sims["ups"] = await UpsSimulator({1: "apc_smt", 2: "apc_smt", 3: "huawei_ups2000",
                                               4: "huawei_ups2000", 5: "sdm120"}).start()
        self.sims["relays"] = await RelayBoardSimulator({1: "waveshare"}).start()
        cameras: list[tuple[str, Callable[[], Awaitable[Any]]]] = []

        async def hik_camera() -> Any:
            from plugins.hikvision.simulator import HikvisionSimulator
            return await HikvisionSimulator("camera", password=self.passwords["cam"]).start()

        async def hik_camera_kp5() -> Any:
            from plugins.hikvision.simulator import HikvisionSimulator
            return await HikvisionSimulator("camera", password=self.passwords["cam"]).start()

        async def hik_nvr() -> Any:
            from plugins.hikvision.simulator import HikvisionSimulator
            sim = await HikvisionSimulator("nvr", channels=4, password=self.passwords["nvr"]).start()
            for ch, days in ((1, 31), (2, 31), (3, 12), (4, 31)):
                sim.set_recordings(ch, days)
            return sim

        async def dahua_camera() -> Any:
            from plugins.dahua.simulator import DahuaSimulator
            return await DahuaSimulator("camera", password=self.passwords["dahua"]).start()

        async def onvif_camera() -> Any:
            from plugins.generic_onvif.simulator import OnvifSimulator
            return await OnvifSimulator(password=self.passwords["onvif"]).start()

        cameras = [("cam-kp1", hik_camera), ("cam-kp5", hik_camera_kp5), ("nvr-post", hik_nvr),
                   ("cam-kp2", dahua_camera), ("cam-kp3", onvif_camera)]
        for name, factory in cameras:
            try:
                self.sims[name] = await factory()
            except Exception as exc:  # a camera plugin missing or broken: the demo goes on without it
                self.notes.append(f"{name} simulator not started: {exc!r}")

    def config_text(self) -> str:
        ups = self.sims["ups"].port
        relays = self.sims["relays"].port
        devices = [
            f"{{id: ups-kp1, name: 'UPS APC SMT1500', platform: ups_modbus, site: kp1-hung, host: 127.0.0.1, "
            f"port: {ups}, unit: 1, model: apc_smt, poll_interval: 1}}",
            f"{{id: ups-kp2, name: 'UPS Huawei UPS2000', platform: ups_modbus, site: kp2-lan, host: 127.0.0.1, "
            f"port: {ups}, unit: 3, model: huawei_ups2000, poll_interval: 1}}",
            f"{{id: ups-kp3, name: 'UPS APC SMT1000', platform: ups_modbus, site: kp3-tam, host: 127.0.0.1, "
            f"port: {ups}, unit: 2, model: apc_smt, poll_interval: 1}}",
            f"{{id: meter-cho, name: 'Eastron SDM120', platform: ups_modbus, site: cho-moi, host: 127.0.0.1, "
            f"port: {ups}, unit: 5, model: sdm120, poll_interval: 1}}",
            f"{{id: ups-kp4, name: 'UPS Huawei UPS2000', platform: ups_modbus, site: kp4-binh, host: 127.0.0.1, "
            f"port: {ups}, unit: 4, model: huawei_ups2000, poll_interval: 1}}",
            f"{{id: light-kp3, name: 'Đèn điểm đen KP3', platform: lighting, site: kp3-tam, driver: modbus_coil, "
            f"host: 127.0.0.1, port: {relays}, unit: 1, channel: 0, poll_interval: 1}}",
            f"{{id: light-cho, name: 'Đèn ngã ba chợ', platform: lighting, site: cho-moi, driver: modbus_coil, "
            f"host: 127.0.0.1, port: {relays}, unit: 1, channel: 1, poll_interval: 1}}",
        ]
        cams = {
            "cam-kp1": ("hikvision", "kp1-hung", "cam", ""),
            "cam-kp5": ("hikvision", "kp5-hoa", "cam", ""),
            "nvr-post": ("hikvision", "post", "nvr", ", retention_interval: 60"),
            "cam-kp2": ("dahua", "kp2-lan", "dahua", ""),
            "cam-kp3": ("generic_onvif", "kp3-tam", "onvif", ""),
        }
        for dev_id, (platform, site, pw, extra) in cams.items():
            sim = self.sims.get(dev_id)
            if sim is None:
                continue
            devices.append(f"{{id: {dev_id}, platform: {platform}, site: {site}, host: 127.0.0.1, "
                           f"port: {sim.port}, username: admin, password: !secret {pw}_password, "
                           f"poll_interval: 2, timeout: 3, health_interval: 0{extra}}}")
        sites = "\n".join(f"  - {{id: {i}, name: \"{n}\", blackspot: {str(b).lower()}}}" for i, n, b in SITES)
        return textwrap.dedent(f"""\
            hub:
              name: "Demo: Khánh Bình ward police post"
              latitude: 11.03
              longitude: 106.76
              timezone: Asia/Ho_Chi_Minh
              data_dir: ./data
            mqtt:
              server: embedded
              embedded_port: {self.port}
              discovery: true
            rules:
              night_light: {{evaluate_interval: 1, min_switch_interval: 300}}
              host_power: {{suspect_window: 30}}
              offline_cause: {{settle: 3}}
            sites:
            """) + sites + "\ndevices:\n" + "".join(f"  - {d}\n" for d in devices)

    # ------------------------------------------------------------------ scenario
    def steps(self) -> list[Step]:
        ups = self.sims["ups"]

        def power_cut() -> None:
            ups.set_state(2, mains=False, battery_charge=96, battery_runtime=2400)

        def battery_low() -> None:
            ups.set_state(2, battery_charge=18, battery_runtime=300, low_battery=True)

        def power_back() -> None:
            ups.set_state(2, mains=True, low_battery=False, battery_charge=40, battery_runtime=1500)

        def officer(payload: dict[str, Any], device: str = "light-cho") -> Callable[[], None]:
            def send() -> None:
                self.publish(f"anninh/{device}/set/an", json.dumps(payload))
            return send

        def motion() -> None:
            sim = self.sims.get("cam-kp1")
            if sim is not None:
                sim.trigger("motion", channel=1)

        async def house_dark() -> None:
            sim = self.sims.get("cam-kp5")
            if sim is not None:
                await sim.stop()

        async def house_back() -> None:
            sim = self.sims.get("cam-kp5")
            if sim is not None:
                await sim.start()

        def morning() -> None:
            self.clock.jump(self.clock.now().replace(hour=5, minute=20) + timedelta(days=1))

        return [
            Step("17:10", "Afternoon. Every host house is on mains; the black-spot lights are off."),
            Step("17:25", "The sun is setting: at −3° the night-light rule switches the black-spot lights on."),
            Step("18:20", "Power cut at Nhà ông Tâm (kp3-tam): its UPS goes on battery.", power_cut),
            Step("18:50", "Motion in front of Nhà ông Hùng (camera cam-kp1).", motion),
            Step("19:05", "Officer An switches the market light OFF from the phone app "
                          "(MQTT anninh/light-cho/set/an).", officer({"state": "OFF"})),
            Step("19:30", "The UPS at kp3-tam is running low.", battery_low),
            Step("19:40", "Mains returns at kp3-tam.", power_back),
            Step("20:00", "Officer An hands the market light back to automatic ({\"mode\":\"auto\"}).",
                 officer({"mode": "auto"})),
            Step("20:20", "Nhà chị Hoa (kp5-hoa, no UPS) goes dark: its only camera drops.", house_dark),
            Step("21:10", "Power is back at kp5-hoa.", house_back),
            Step("21:40", "The night passes…", morning),
            Step("05:45", "Morning: above −1° the rule switches the black-spot lights off."),
            Step("06:30", "Scenario complete. The demo keeps running: try the MQTT commands below."),
        ]

    async def play(self) -> None:
        steps = self.steps()
        day = self.clock.now().astimezone(TZ).date()
        previous = (0, 0)
        for step in steps:
            hh, mm = map(int, step.at.split(":"))
            if (hh, mm) < previous:  # a step earlier in the day than the one before: the next morning
                day += timedelta(days=1)
            previous = (hh, mm)
            when = datetime(day.year, day.month, day.day, hh, mm, tzinfo=TZ)
            while self.clock.now() < when:
                await asyncio.sleep(0.05)
            self.say(step.text)
            if step.action is not None:
                try:
                    result = step.action()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception as exc:
                    self.say(f"(step failed: {exc!r})")
        self.done.set()

    def say(self, text: str) -> None:
        stamp = self.clock.now().astimezone(TZ).strftime("%H:%M")
        self.narration.append((stamp, text))
        if self.plain:
            print(f"[{stamp}] ▶ {text}", flush=True)

    def publish(self, topic: str, payload: str) -> None:
        if self.officer is not None:
            self.officer.publish(topic, payload, qos=1)

    # ------------------------------------------------------------------ run
    plain = False

    async def run(self, duration: float, view: bool) -> None:
        self.plain = not view
        await self.start_simulators()
        cfg_path = self.dir / "config.yaml"
        cfg_path.write_text(self.config_text())
        (self.dir / "secrets.yaml").write_text("".join(f"{k}_password: {v}\n" for k, v in self.passwords.items()))
        for p in (cfg_path, self.dir / "secrets.yaml"):
            p.chmod(0o600)
        plugins = load_plugins()
        config = load_config(cfg_path, plugins)
        self.running = await start_hub(config, plugins, clock=self.clock,
                                       backoff=Backoff(initial=1, maximum=5, auth_minimum=10))
        self.running.hub.add_listener(Listener(on_event=self._on_event))
        server = self.running.extra["server"]
        self.port = int(server.rsplit(":", 1)[1])
        self.officer = paho.Client(CallbackAPIVersion.VERSION2, client_id="officer-an-phone")
        self.officer.connect("127.0.0.1", self.port)
        self.officer.loop_start()
        for note in self.notes:
            self.say(note)
        self.clock.jump(self.clock.start.replace(hour=17, minute=10))  # the story starts now, set-up done
        player = asyncio.get_running_loop().create_task(self.play())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        if duration > 0:
            loop.call_later(duration, stop.set)
        try:
            if view:
                await self._live(stop)
            else:
                self._print_commands()
                await stop.wait()
        finally:
            player.cancel()
            with contextlib.suppress(BaseException):
                await player
            if self.plain:
                self._print_summary()
            self.officer.loop_stop()
            self.officer.disconnect()
            await self.running.stop()
            for sim in self.sims.values():
                with contextlib.suppress(Exception):
                    await sim.stop()

    def _on_event(self, event: HubEvent) -> None:
        self.events.append(event)
        if self.plain:
            data = {k: v for k, v in event.as_json().items() if k not in ("type", "time")}
            stamp = event.time.astimezone(TZ).strftime("%H:%M")
            print(f"[{stamp}]   event {event.type} {json.dumps(data, ensure_ascii=False)}", flush=True)

    def commands(self) -> list[str]:
        p = self.port
        return [
            f"mosquitto_sub -h 127.0.0.1 -p {p} -t 'anninh/#' -v",
            f"mosquitto_pub -h 127.0.0.1 -p {p} -t anninh/light-kp3/set/an -m '{{\"state\":\"OFF\"}}'",
            f"mosquitto_pub -h 127.0.0.1 -p {p} -t anninh/light-kp3/set/an -m '{{\"mode\":\"auto\"}}'",
            f"mosquitto_pub -h 127.0.0.1 -p {p} -t anninh/light-cho/set -m ON",
        ]

    def _print_commands(self) -> None:
        print(f"Embedded MQTT broker on 127.0.0.1:{self.port}. Try, in another terminal "
              "(Debian: apt-get install mosquitto-clients; or any MQTT phone app):")
        for c in self.commands():
            print(f"  {c}")
        print(flush=True)

    def _print_summary(self) -> None:
        assert self.running is not None
        hub = self.running.hub
        print("\nFinal state:")
        for site, st in hub.site_states.items():
            print(f"  site {site:9} power={st.get('power')}")
        for dev, st in hub.states.items():
            bits = {k: st.get(k) for k in ("status", "state", "mode", "mains", "retention_days") if k in st}
            print(f"  {dev:10} {'online ' if hub.availability.get(dev) else 'OFFLINE'} {bits}")

    # ------------------------------------------------------------------ live view (rich)
    async def _live(self, stop: asyncio.Event) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console()
        with Live(self._render(), console=console, refresh_per_second=4, screen=True,
                  vertical_overflow="crop") as live:
            while not stop.is_set():
                await asyncio.sleep(0.25)
                live.update(self._render())

    def _render(self) -> Any:
        from rich import box
        from rich.console import Group
        from rich.panel import Panel
        from rich.table import Table
        from rich.text import Text

        assert self.running is not None
        hub = self.running.hub
        now = self.clock.now().astimezone(TZ)
        sun = hub.sun.elevation(now) if hub.sun else 0.0
        night = "night" if sun < -1 else "day"
        head = Text.assemble((" AnNinh Hub demo ", "bold white on blue"), "  ",
                             (f"{now:%a %H:%M}", "bold"), f"  sun {sun:+.1f}° ({night})   ",
                             f"clock ×{self.speed:g}   broker 127.0.0.1:{self.port}")
        sites = Table(box=box.SIMPLE_HEAD, expand=True, title="Sites", title_justify="left")
        for col in ("site", "power", "devices", "lights"):
            sites.add_column(col)
        for site_id, name, blackspot in SITES:
            st = hub.site_states.get(site_id, {})
            power = st.get("power", "unknown")
            if st.get("suspected_power_loss"):
                power = "suspected cut"
            style = {"ok": "green", "lost": "bold red", "unknown": "yellow"}.get(power, "bold red")
            devs = [d for d, r in hub.runners.items() if r.config.site == site_id]
            online = sum(1 for d in devs if hub.availability.get(d))
            lights = " ".join(
                f"{'💡' if hub.states[d].get('state') == 'ON' else '·'}{hub.states[d].get('mode', '')[:1]}"
                for d in devs if hub.runners[d].kind == "light")
            sites.add_row(Text(name + (" ★" if blackspot else ""), style="bold" if blackspot else ""),
                          Text(power, style=style), f"{online}/{len(devs)} online", lights)
        devices = Table(box=box.SIMPLE_HEAD, expand=True, title="Devices", title_justify="left")
        for col in ("device", "kind", "", "state"):
            devices.add_column(col, overflow="fold")
        for dev_id, runner in hub.runners.items():
            st = hub.states.get(dev_id, {})
            ok = hub.availability.get(dev_id)
            mark = Text("●", style="green") if ok else Text("●", style="red" if ok is False else "yellow")
            devices.add_row(dev_id, runner.kind, mark, self._summary(runner.kind, st, hub.errors.get(dev_id)))
        events = Table(box=box.SIMPLE_HEAD, expand=True, title="Events (anninh/bridge/event)", title_justify="left")
        events.add_column("time", width=5)
        events.add_column("event")
        for ev in list(self.events)[-10:]:
            data = {k: v for k, v in ev.as_json().items() if k not in ("type", "time", "site")}
            style = "bold red" if ev.type in ("power_lost", "low_battery", "device_offline", "retention_low",
                                             "power_suspected_lost", "camera_offline") else ""
            events.add_row(ev.time.astimezone(TZ).strftime("%H:%M"),
                           Text(f"{ev.type} {json.dumps(data, ensure_ascii=False)[:110]}", style=style))
        story = Text()
        for stamp, text in self.narration:
            story.append(f"{stamp} ", style="dim")
            story.append(text + "\n")
        cmds = Text("\n".join(self.commands()), style="cyan")
        return Group(Panel(head), Panel(story, title="Scenario", border_style="magenta"), sites, devices, events,
                     Panel(cmds, title="Try it by hand (Ctrl-C to stop)", border_style="cyan"))

    @staticmethod
    def _summary(kind: str, st: dict[str, Any], error: str | None) -> str:
        if error:
            return f"offline: {error}"
        if kind == "ups":
            return (f"{st.get('status')}  charge {st.get('battery_charge')}%  runtime {st.get('battery_runtime')} s"
                    f"  in {st.get('input_voltage')} V")
        if kind == "meter":
            return f"mains {'yes' if st.get('mains') else 'NO'}  {st.get('input_voltage')} V  {st.get('power')} W"
        if kind == "light":
            return f"{st.get('state')} [{st.get('mode')}] {st.get('reason')}"
        bits = []
        for key in ("model", "motion", "tamper", "video_loss", "retention_days", "offline_cause"):
            if st.get(key) not in (None, False, {}):
                value = st[key]
                if isinstance(value, dict):
                    value = value.get("recorder", value)
                bits.append(f"{key}={value}")
        return "  ".join(bits)


def run_demo(args: argparse.Namespace) -> int:
    port = args.port if port_is_free("127.0.0.1", args.port) else free_port()
    with tempfile.TemporaryDirectory(prefix="anninh-demo-") as tmp:
        demo = Demo(args.speed, port, Path(tmp))
        if not args.no_view:
            logging.getLogger().setLevel(logging.WARNING)
        try:
            asyncio.run(demo.run(args.duration, view=not args.no_view))
        except KeyboardInterrupt:
            pass
        except BrokerError as exc:
            print(f"error: embedded broker: {exc}", file=sys.stderr)
            return 1
    return 0
