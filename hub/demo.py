"""``anninh demo``: a whole commune on one machine.

An embedded MQTT broker, simulated devices of every plugin (UPS units of two models and a power
meter on one Modbus simulator, a relay board with the black-spot lights, Hikvision / Dahua / ONVIF
cameras and a Hikvision NVR), the hub with its default rules, a demo clock that runs fast, and a
live terminal view. A scripted evening plays by itself: dusk falls and the black-spot lights come
on, a host house loses power, an officer exports footage from the NVR and switches a light from the
phone app (over MQTT, as a real app would), power returns, a house without a UPS goes dark, and morning comes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import logging
import secrets
import signal
import sys
import tempfile
import textwrap
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from hub.api import HubEvent
from hub.app import RunningHub, run_to_end, start_hub
from hub.broker import free_port, port_is_free
from hub.clock import ScaledClock
from hub.config import load_config
from hub.core import Backoff, Listener
from hub.i18n import N_, _, format_datetime, language, normalize, tr, use_language
from hub.plugins import PluginManager, load_plugins
from hub.sun import Sun

log = logging.getLogger("hub.demo")
FOOTAGE_SECONDS = 180  # real footage on the demo NVR (channel 1), made on first use
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
LATITUDE, LONGITUDE = 11.03, 106.76  # the demo post (its config's hub.latitude / hub.longitude)

SITE_OFFSETS = [(0.004, -0.005), (0.006, 0.003), (-0.002, 0.006), (-0.004, -0.001), (-0.006, -0.006),
                (0.001, 0.009), (0.0, 0.0)]
"""(latitude, longitude) of each of SITES from the post, in degrees"""
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
    at: datetime  # on the demo clock
    text: str
    action: Callable[[], Awaitable[None] | None] | None = None
    jump_to: datetime | None = None  # after this step the demo clock jumps here (the night passes)


def story_times(day: date) -> tuple[datetime, datetime]:
    """(dusk, dawn) of the evening of ``day`` at the demo post: when the hub's sun thresholds are
    crossed (night below −3°, day above −1°), so the story's words match what the night rule does."""
    sun = Sun(LATITUDE, LONGITUDE, TZ.key)
    dusk = sun.next_transition(datetime(day.year, day.month, day.day, 12, tzinfo=TZ))
    dawn = sun.next_transition(dusk + timedelta(hours=1))
    return (dusk.astimezone(TZ).replace(second=0, microsecond=0),
            dawn.astimezone(TZ).replace(second=0, microsecond=0))


def story_seconds(steps: list[Step], speed: float) -> float:
    """Real seconds from the story's start (its first step) to its last step at ``speed``."""
    now, total = steps[0].at, 0.0
    for step in steps:
        if step.at > now:
            total += (step.at - now).total_seconds() / speed
            now = step.at
        if step.jump_to is not None:
            now = step.jump_to
    return total


def hand_commands(port: int, host: str = "127.0.0.1") -> list[tuple[bool, str]]:
    """The commands printed to try the demo by hand, as (in the short list?, command). QoS 1, as the
    hub's command topics are specified; all in this one place, so a broker that wants a user and
    password for them changes only this function."""
    base = f"-h {host} -p {port} -q 1"
    return [
        (True, f"mosquitto_sub {base} -t 'anninh/#' -v"),
        (True, f"mosquitto_pub {base} -t anninh/light-kp3/set -m OFF"),
        (True, f"mosquitto_pub {base} -t anninh/light-kp3/set -m ON"),
        (False, f"mosquitto_pub {base} -t anninh/light-kp3/set/an -m '{{\"state\":\"OFF\"}}'"),
        (False, f"mosquitto_pub {base} -t anninh/light-kp3/set -m '{{\"mode\":\"auto\"}}'"),
    ]


class Demo:
    def __init__(self, speed: float, port: int, workdir: Path, day: date | None = None,
                 lang: str | None = None) -> None:
        self.lang = normalize(lang) if lang else language()
        """what the demo says and the hub's ``hub.language``"""
        self.speed = speed
        self.port = port
        self.dir = workdir
        self.sims: dict[str, Any] = {}
        self.plugins: PluginManager | None = None
        self.notes: list[str] = []
        self.running: RunningHub | None = None
        self.events: deque[HubEvent] = deque(maxlen=200)
        self.narration: deque[tuple[str, str]] = deque(maxlen=100)
        self.warnings: deque[str] = deque(maxlen=100)
        self.officer: paho.Client | None = None
        self.dusk, self.dawn = story_times(day or datetime.now(TZ).date())
        self.start = self.dusk - timedelta(minutes=15)
        self.clock = ScaledClock(self.start, speed)
        self.done = asyncio.Event()
        self.stop = asyncio.Event()
        self.played_seconds: float | None = None  # real seconds the story took, once played
        self.passwords = {name: secrets.token_urlsafe(9) for name in ("cam", "nvr", "onvif", "dahua")}
        self.footage: tuple[datetime, datetime] | None = None  # the NVR's real footage (its clock, naive)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.background: list[asyncio.Task[Any]] = []
        self.web: Any = None  # the web console (hub.web.server.WebConsole), once started
        self.web_port = 8080
        self.ticket: int | None = None  # the maintenance ticket the story opens

    # ------------------------------------------------------------------ simulators
    async def start_simulators(self) -> None:
        """Start the simulated devices through the plugins' ``anninh_simulator_factories`` hook
        (the demo never imports a plugin); a camera plugin missing or broken leaves its camera out."""
        if self.plugins is None:
            self.plugins = load_plugins()
        factories = self.plugins.simulator_factories()
        for needed in ("ups_modbus", "relay_board"):
            if needed not in factories:
                raise RuntimeError(tr("no simulator {name}: the built-in plugins ups_modbus and lighting are "
                                      "needed (`anninh plugins` shows what failed to load)", name=repr(needed)))
        self.sims["ups"] = await factories["ups_modbus"](models={1: "apc_smt", 2: "apc_smt", 3: "huawei_ups2000",
                                                                 4: "huawei_ups2000", 5: "sdm120"})
        self.sims["relays"] = await factories["relay_board"](boards={1: "waveshare"})

        async def hik_nvr(**options: Any) -> Any:
            sim = await factories["hikvision"](**options)
            for ch, days in ((1, 31), (2, 31), (3, 12), (4, 31)):
                sim.set_recordings(ch, days)
            # the newest minutes of channel 1 (cam-kp1's street) are real files for the officer's
            # export; added after the start, so the start does not wait for them (about a second)
            if hasattr(sim, "add_footage"):
                now = sim.now()
                self.footage = (now - timedelta(seconds=FOOTAGE_SECONDS)).replace(microsecond=0, tzinfo=None), \
                    now.replace(microsecond=0, tzinfo=None)
                sim.add_footage(1, *self.footage)
                if hasattr(sim, "footage"):  # made in a thread while the hub starts, not on its first search
                    self.background.append(asyncio.get_running_loop().create_task(
                        asyncio.to_thread(sim.footage.prepare)))
            return sim

        cameras: list[tuple[str, str, Any, dict[str, Any]]] = [
            ("cam-kp1", "hikvision", factories.get("hikvision"), {"kind": "camera", "password": self.passwords["cam"]}),
            ("cam-kp5", "hikvision", factories.get("hikvision"), {"kind": "camera", "password": self.passwords["cam"]}),
            ("nvr-post", "hikvision", hik_nvr, {"kind": "nvr", "channels": 4, "password": self.passwords["nvr"]}),
            ("cam-kp2", "dahua", factories.get("dahua"), {"kind": "camera", "password": self.passwords["dahua"]}),
            ("cam-kp3", "onvif", factories.get("onvif"), {"password": self.passwords["onvif"]}),
        ]
        for name, sim_name, factory, options in cameras:
            if sim_name not in factories:
                self.notes.append(tr("{name} simulator not started: no simulator {simulator}", name=name,
                                     simulator=repr(sim_name)))
                continue
            try:
                self.sims[name] = await factory(**options)
            except Exception as exc:  # a camera plugin broken: the demo goes on without it
                self.notes.append(tr("{name} simulator not started: {error}", name=name, error=repr(exc)))

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
        # each site a few hundred metres from the post, for the web console's map
        sites = "\n".join(f"  - {{id: {i}, name: \"{n}\", blackspot: {str(b).lower()}, "
                          f"latitude: {LATITUDE + SITE_OFFSETS[k][0]:.4f}, "
                          f"longitude: {LONGITUDE + SITE_OFFSETS[k][1]:.4f}}}"
                          for k, (i, n, b) in enumerate(SITES))
        return textwrap.dedent(f"""\
            hub:
              name: "Demo: Khánh Bình ward police post"
              latitude: {LATITUDE}
              longitude: {LONGITUDE}
              timezone: Asia/Ho_Chi_Minh
              language: {self.lang}
              data_dir: ./data
            mqtt:
              server: embedded
              embedded_port: {self.port}
              discovery: true
            web:
              port: {self.web_port}
            rules:
              night_light: {{evaluate_interval: 1, min_switch_interval: 300}}
              host_power: {{suspect_window: 30}}
              offline_cause: {{settle: 3}}
            contractors:
              - {{name: thau1, phone: "0912 345 678", contact: "Công ty TNHH Camera Bình Minh",
                  deadlines: {{camera: 48h, recorder: 24h, ups: 72h, light: 72h}}}}
            tickets: {{open_after: 20m, close_after: 10m}}
            sites:
            """) + sites + "\ndevices:\n" + "".join(f"  - {d}\n" for d in devices)

    # ------------------------------------------------------------------ scenario
    def steps(self) -> list[Step]:
        """The scripted evening, timed from today's dusk and dawn at the post (about 57 real seconds
        at the default 240×; ``story_seconds``), told in the demo's language."""
        with use_language(self.lang):
            return self._steps()

    def _steps(self) -> list[Step]:

        def power_cut() -> None:
            self.sims["ups"].set_state(2, mains=False, battery_charge=96, battery_runtime=2400)

        def battery_low() -> None:
            self.sims["ups"].set_state(2, battery_charge=18, battery_runtime=300, low_battery=True)

        def power_back() -> None:
            self.sims["ups"].set_state(2, mains=True, low_battery=False, battery_charge=40, battery_runtime=1500)

        def officer(payload: dict[str, Any], device: str = "light-cho") -> Callable[[], None]:
            def send() -> None:
                self.publish(f"anninh/{device}/set/an", json.dumps(payload))
            return send

        def motion() -> None:
            sim = self.sims.get("cam-kp1")
            if sim is not None:
                sim.trigger("motion", channel=1)

        def export() -> None:
            if self.footage is None:
                self.say(_("(no NVR with footage in this demo: the export is left out)"))
                return
            # the recorder films in real time while the demo clock runs fast: the officer asks for
            # two real minutes it holds (times in the hub's local time, as the app sends them)
            first, last = self.footage
            start, end = last - timedelta(seconds=150), last - timedelta(seconds=30)
            self.publish("anninh/bridge/request/export/an", json.dumps({
                "device": "nvr-post", "channel": 1, "start": f"{max(start, first):%Y-%m-%d %H:%M:%S}",
                "end": f"{end:%Y-%m-%d %H:%M:%S}", "case": "VV-DEMO-01",
                "reason": tr("motion in front of {site}", site="kp1-hung"), "transaction": "demo-export"}))

        async def house_dark() -> None:
            sim = self.sims.get("cam-kp5")
            if sim is not None:
                await sim.stop()

        async def camera_breaks() -> None:
            sim = self.sims.get("cam-kp2")
            if sim is not None:
                await sim.stop()

        async def camera_repaired() -> None:
            sim = self.sims.get("cam-kp2")
            if sim is not None:
                await sim.start()

        def contractor_ack() -> None:
            if self.ticket is None:
                self.say("(no ticket opened yet: the acknowledgement is left out)")
            else:
                self.publish("anninh/bridge/request/ticket", json.dumps({
                    "action": "ack", "ticket": self.ticket, "by": "thau1", "note": "sáng mai tới sửa",
                    "transaction": "demo-ticket"}))

        async def house_back() -> None:
            sim = self.sims.get("cam-kp5")
            if sim is not None:
                await sim.start()

        def m(minutes: int) -> timedelta:
            return timedelta(minutes=minutes)

        dusk, dawn = self.dusk, self.dawn
        # the gaps after a camera drops or returns leave the hub's real-time settle (3 s) and
        # reconnect backoff (up to 5 s) room to act at 240× before the next step
        return [
            Step(self.start, _("Late afternoon. Every host house is on mains; the black-spot lights are off.")),
            Step(dusk - m(3), tr("The sun is setting: below −3° (at about {time} today) the night-light "
                                 "rule switches the black-spot lights on.", time=dusk.strftime("%H:%M"))),
            Step(dusk + m(20), _("Power cut at Nhà ông Tâm (kp3-tam): its UPS goes on battery."), power_cut),
            Step(dusk + m(35), _("Motion in front of Nhà ông Hùng (camera cam-kp1)."), motion),
            Step(dusk + m(40), _("Officer An asks the post's NVR for two minutes of channel 1 (the street at "
                                 "kp1-hung) from the phone app (MQTT anninh/bridge/request/export/an); the hub "
                                 "seals a signed evidence package."), export),
            Step(dusk + m(50), _("Officer An switches the market light OFF from the phone app "
                                 "(MQTT anninh/light-cho/set/an)."), officer({"state": "OFF"})),
            Step(dusk + m(70), _("The UPS at kp3-tam is running low."), battery_low),
            Step(dusk + m(80), _("Mains returns at kp3-tam."), power_back),
            Step(dusk + m(95), tr("Officer An hands the market light back to automatic ({payload}).",
                                  payload='{"mode":"auto"}'), officer({"mode": "auto"})),
            Step(dusk + m(110), _("Nhà chị Hoa (kp5-hoa, no UPS) goes dark: its only camera drops."), house_dark),
            Step(dusk + m(112), _("Camera cam-kp2 at Nhà bà Lan breaks down (the house has power): after "
                                  "20 minutes (tickets.open_after) the hub opens a maintenance ticket for "
                                  "contractor thau1."), camera_breaks),
            Step(dusk + m(158), _("Contractor thau1 acknowledges the ticket from the phone "
                                  "(MQTT anninh/bridge/request/ticket)."), contractor_ack),
            Step(dusk + m(160), _("Power is back at kp5-hoa."), house_back),
            Step(dusk + m(170), _("The contractor repairs cam-kp2: 10 minutes later the ticket closes as "
                                  "recovered."), camera_repaired),
            Step(dusk + m(185), _("The night passes…"), jump_to=dawn - m(15)),
            Step(dawn - m(3), tr("Dawn: above −1° (at about {time}) the rule switches the black-spot "
                                 "lights off.", time=dawn.strftime("%H:%M"))),
            Step(dawn + m(12), _("Scenario complete. The demo keeps running: try the MQTT commands.")),
        ]

    async def play(self) -> None:
        began = time.monotonic()
        for step in self.steps():
            while self.clock.now() < step.at:
                await asyncio.sleep(0.05)
            self.say(step.text)
            if step.action is not None:
                try:
                    result = step.action()
                    if asyncio.iscoroutine(result):
                        await result
                except Exception as exc:
                    self.say(tr("(step failed: {error})", error=repr(exc)))
            if step.jump_to is not None:
                self.clock.jump(step.jump_to)
        self.played_seconds = time.monotonic() - began
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
        if view:
            print(_("AnNinh Hub demo: starting the simulated devices and the hub…"), flush=True)
        await self.start_simulators()
        cfg_path = self.dir / "config.yaml"
        self.web_port = 8080 if port_is_free("127.0.0.1", 8080) else free_port("127.0.0.1")
        cfg_path.write_text(self.config_text())
        (self.dir / "secrets.yaml").write_text("".join(f"{k}_password: {v}\n" for k, v in self.passwords.items()))
        for p in (cfg_path, self.dir / "secrets.yaml"):
            p.chmod(0o600)
        plugins = self.plugins or load_plugins()
        config = load_config(cfg_path, plugins)
        from hub.cli.common import use_log_timezone  # here: hub.cli imports this module

        use_log_timezone(config.hub.timezone)  # log lines in the post's time, as `anninh run` prints them
        self.running = await start_hub(config, plugins, clock=self.clock,
                                       backoff=Backoff(initial=1, maximum=5, auth_minimum=10))
        self.running.hub.add_listener(Listener(on_event=self._on_event))
        from hub.web.server import start_console  # here: only the demo and `run` serve the console

        self.web = await start_console(self.running.hub)
        if self.web is not None:
            self.notes.append(self.web.banner())
        server = self.running.extra["server"]
        self.port = int(server.rsplit(":", 1)[1])
        self.officer = paho.Client(CallbackAPIVersion.VERSION2, client_id="officer-an-phone")
        self.loop = asyncio.get_running_loop()
        self.officer.on_connect = lambda client, *_: client.subscribe("anninh/bridge/response/export/an", qos=1)
        self.officer.on_message = self._on_officer_message
        self.officer.connect("127.0.0.1", self.port)
        self.officer.loop_start()
        for note in self.notes:
            self.say(note)
        self.clock.jump(self.start)  # the story starts now, set-up done
        player = asyncio.get_running_loop().create_task(self.play())
        stop = self.stop
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
                with contextlib.suppress(OSError):  # stdout closed (`| head`): still stop everything below
                    self._print_summary()
            self.officer.loop_stop()
            self.officer.disconnect()
            if self.web is not None:
                await self.web.stop()
            await self.running.stop()
            self._report(config, plugins)
            for sim in self.sims.values():
                with contextlib.suppress(Exception):
                    await sim.stop()

    def _report(self, config: Any, plugins: Any) -> None:
        """The report of the scripted evening, from the hub's history, beside the demo's (temporary) directory."""
        from hub.i18n import language
        from hub.ops.report.service import evening_report

        out = self.dir.parent / f"{self.dir.name}-report.html"
        with contextlib.suppress(OSError):  # stdout closed (`| head`)
            print(evening_report(config, plugins, self.start, self.clock.now(), out, language()), flush=True)

    def _on_officer_message(self, client: Any, userdata: Any, message: Any) -> None:
        """The hub's answer to the officer's export request (paho's thread: said on the loop)."""
        try:
            answer = json.loads(message.payload)
            data = answer.get("data") or {}
            if answer.get("status") == "ok":
                text = tr("The officer's phone gets the package {package} ({completeness}): {path}",
                          package=data.get("package_id"), path=data.get("path"),
                          completeness=_("complete") if data.get("complete") else _("with gaps"))
            else:
                text = tr("The export failed: {error}", error=answer.get("error"))
        except (ValueError, AttributeError) as exc:
            text = tr("(unreadable export answer: {error})", error=exc)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.say, text)

    def _on_event(self, event: HubEvent) -> None:
        self.events.append(event)
        if event.type == "ticket_opened":
            self.ticket = event.data.get("ticket")
        if self.plain:
            data = {k: v for k, v in event.as_json().items() if k not in ("type", "time")}
            stamp = event.time.astimezone(TZ).strftime("%H:%M")
            print(tr("[{time}]   event {type} {data}", time=stamp, type=event.type,
                     data=json.dumps(data, ensure_ascii=False)), flush=True)

    def commands(self, short: bool = False) -> list[str]:
        return [c for in_short, c in hand_commands(self.port) if in_short or not short]

    def _print_commands(self) -> None:
        print(tr("Embedded MQTT broker on 127.0.0.1:{port}. Try, in another terminal "
                 "(Debian: apt-get install mosquitto-clients; or any MQTT phone app):", port=self.port))
        for c in self.commands():
            print(f"  {c}")
        print(flush=True)

    def _print_summary(self) -> None:
        assert self.running is not None
        hub = self.running.hub
        print("\n" + _("Final state:"))
        for site, st in hub.site_states.items():
            power = st.get("power")
            print(tr("  site {site} power={power}", site=site.ljust(9), power=power_words().get(power, power)))
        for dev, st in hub.states.items():
            bits = {k: st.get(k) for k in ("status", "state", "mode", "mains", "retention_days") if k in st}
            online = _("online") if hub.availability.get(dev) else _("OFFLINE")
            print(f"  {dev:10} {online:7} {bits}")

    # ------------------------------------------------------------------ live view (rich)
    async def _live(self, stop: asyncio.Event) -> None:
        from rich.console import Console
        from rich.live import Live

        console = Console()
        # log lines written to the terminal would tear the full-screen view: keep them for the end
        root = logging.getLogger()
        saved = root.handlers[:]
        root.handlers = [_KeepRecords(self.warnings)]
        try:
            with Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
                while not stop.is_set():
                    # rendered here, in the loop's thread, so the hub's dicts never change mid-render;
                    # the terminal's size is read again every time (a resized window re-lays out)
                    live.update(self.render(console.size.width, console.size.height), refresh=True)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 0.25)
        finally:
            root.handlers = saved
        if self.warnings:
            print(tr("{n} warning(s) logged during the demo (kept off the live view), the last ones:",
                     n=len(self.warnings)), file=sys.stderr)
            for line in list(self.warnings)[-20:]:
                print(f"  {line}", file=sys.stderr)

    def render(self, width: int, height: int) -> Any:
        """The live view for a ``width`` × ``height`` terminal, never taller than that.

        Newest last, always shown: the story's narration and the hub's events are cut from the top
        to the lines they are given. When room is short the full command list gives way to a short
        one (then to one line), the device list goes, then the site table.
        """
        with use_language(self.lang):
            return self._render(width, height)

    def _render(self, width: int, height: int) -> Any:
        from rich.console import Console, Group
        from rich.layout import Layout
        from rich.panel import Panel
        from rich.rule import Rule
        from rich.text import Text

        width, height = max(width, 20), max(height, 6)
        measure = Console(width=width, height=height, file=io.StringIO(), color_system=None)

        def lines(text: Text, w: int) -> int:
            return len(text.wrap(measure, w))

        # the "try it by hand" box: all commands in a panel, else the short ones, else one line
        title = _("Try it by hand (Ctrl-C stops the demo)")
        full, short = self.commands(), self.commands(short=True)
        cmd_box: Any
        if height >= 40 and max(len(c) for c in full) + 4 <= width:
            cmd_box = Panel(Text("\n".join(full), style="cyan", no_wrap=True), title=title, title_align="left",
                            border_style="cyan")
            cmd_h = len(full) + 2
        elif height >= 16:
            text = Text("\n".join(short), style="cyan", overflow="fold")
            cmd_box, cmd_h = Group(Rule(title, style="cyan", align="left"), text), 1 + lines(text, width)
        else:
            text = Text(tr("Try: {command}", command=short[1]), style="cyan", overflow="fold")
            cmd_h = min(2, lines(text, width))
            cmd_box = text
        cmd_h = min(cmd_h, height // 3)  # whatever the commands become, the events keep room

        assert self.running is not None
        devices_h = 1 + len(self.running.hub.runners)  # a header and one line each
        body_h = height - 1 - cmd_h
        root = Layout()
        parts = [Layout(self._head(), size=1)]
        if width >= 140 and body_h >= 8 + 1 + devices_h + 1 + 4:
            # two columns: the commune and the story on the left, the events the whole height on the right
            left_w = width // 2
            story_h = body_h - (8 + 1 + devices_h + 1)
            left = Layout()
            left.split_column(Layout(self._sites(), size=8), Layout(Text(" "), size=1),
                              Layout(self._devices(), size=devices_h), Layout(Text(" "), size=1),
                              Layout(self._story(story_h, left_w - 2, lines), size=story_h))
            body = Layout(size=body_h)
            body.split_row(Layout(left, size=left_w - 2), Layout(Text(" "), size=2), Layout(self._events(body_h)))
            parts.append(body)
        else:  # one column, the most urgent kept
            rest = body_h
            if rest >= 8 + 3 + 4:
                parts.append(Layout(self._sites(), size=8))
                rest -= 8
            if rest >= devices_h + 3 + 6:
                parts.append(Layout(self._devices(), size=devices_h))
                rest -= devices_h
            story_h = min(max(2, rest * 2 // 5), rest - 2) if rest >= 4 else 0
            if story_h:
                parts.append(Layout(self._story(story_h, width, lines), size=story_h))
            parts.append(Layout(self._events(rest - story_h), size=rest - story_h))
        parts.append(Layout(cmd_box, size=cmd_h))
        root.split_column(*parts)
        return root

    def _head(self) -> Any:
        from rich.text import Text

        assert self.running is not None
        hub = self.running.hub
        now = self.clock.now().astimezone(TZ)
        sun = hub.sun.elevation(now) if hub.sun else 0.0
        night = _("night") if hub.sun and sun < hub.sun.on_below else (
            _("day") if not hub.sun or sun > hub.sun.off_above else _("twilight"))
        return Text.assemble((" " + _("AnNinh Hub demo") + " ", "bold white on blue"), " ",
                             (format_datetime(now, "EEE HH:mm"), "bold"),
                             "  " + tr("sun {elevation}° ({phase})", elevation=format(sun, "+.1f"), phase=night) + "  ",
                             f"×{self.speed:g}  MQTT 127.0.0.1:{self.port}",
                             no_wrap=True, overflow="ellipsis")

    def _sites(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        assert self.running is not None
        hub = self.running.hub
        table = Table(box=None, expand=True, padding=(0, 1), pad_edge=False, header_style="bold magenta")
        table.add_column(_("Site (★ black spot)"), ratio=1, no_wrap=True, overflow="ellipsis")  # what is left
        # msgids with "power" so that the short words do not stand for others (English catalog: "ok" …)
        powers = power_words()
        # at least "suspected cut", "3/3 online", "OFF manual" wide
        for col, least in ((_("Power"), max(map(len, powers.values()))),
                           (_("Devices"), len(tr("{online}/{total} online", online=3, total=3))),
                           (_("Lights"), max(len(light_words(s, m)) for s in ("ON", "OFF") for m in MODES))):
            table.add_column(col, no_wrap=True, overflow="ellipsis", min_width=least)
        for site_id, name, blackspot in SITES:
            st = hub.site_states.get(site_id, {})
            power = st.get("power", "unknown")
            if st.get("suspected_power_loss"):
                power = "suspected"
            style = {"ok": "green", "lost": "bold red", "unknown": "yellow"}.get(power, "bold red")
            devs = [d for d, r in hub.runners.items() if r.config.site == site_id]
            online = sum(1 for d in devs if hub.availability.get(d))
            states = [(hub.states[d].get("state"), hub.states[d].get("mode")) for d in devs
                      if hub.runners[d].kind == "light" and d in hub.states]
            lights = ", ".join(light_words(state, mode) for state, mode in states)
            table.add_row(Text(name + (" ★" if blackspot else ""), style="bold" if blackspot else ""),
                          Text(powers.get(power, power), style=style),
                          tr("{online}/{total} online", online=online, total=len(devs)),
                          Text(lights, style="bold yellow" if any(s == "ON" for s, _m in states) else ""))
        return table

    def _devices(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        assert self.running is not None
        hub = self.running.hub
        table = Table(box=None, expand=True, padding=(0, 1), pad_edge=False, header_style="bold magenta")
        ids = max((len(d) for d in hub.runners), default=6)
        table.add_column(_("Device"), no_wrap=True, min_width=ids)
        table.add_column(_("Kind"), no_wrap=True, min_width=8)
        table.add_column("", no_wrap=True, min_width=1)
        table.add_column(_("State"), ratio=1, no_wrap=True, overflow="ellipsis")  # what is left
        for dev_id, runner in hub.runners.items():
            st = hub.states.get(dev_id, {})
            ok = hub.availability.get(dev_id)
            mark = Text("●", style="green") if ok else Text("●", style="red" if ok is False else "yellow")
            # Text: a reason or error in [brackets] is words, not rich markup
            table.add_row(dev_id, runner.kind, mark, Text(self._summary(runner.kind, st, hub.errors.get(dev_id))))
        return table

    def _story(self, height: int, width: int, lines: Callable[[Any, int], int]) -> Any:
        """The title and as many of the newest narration lines as fit in ``height`` lines."""
        from rich.console import Group
        from rich.text import Text

        shown: list[Text] = []
        room = height - 1
        for stamp, said in reversed(self.narration):
            text = Text.assemble((f"{stamp} ", "dim"), said)
            need = lines(text, width)
            if need > room:
                if not shown:  # the newest alone is too long: its first lines
                    shown.append(Text.assemble((f"{stamp} ", "dim"), said, no_wrap=True, overflow="ellipsis"))
                break
            shown.append(text)
            room -= need
        title = Text(_("Scenario (newest last)"), style="bold magenta", no_wrap=True, overflow="ellipsis")
        return Group(title, *reversed(shown))

    def _events(self, height: int) -> Any:
        """The title and the newest ``height - 1`` hub events, one line each."""
        from rich.console import Group
        from rich.text import Text

        rows: list[Text] = []
        for ev in list(self.events)[-(height - 1):] if height > 1 else []:
            data = {k: v for k, v in ev.as_json().items() if k not in ("type", "time")}
            who = data.pop("device", None) or data.get("site", "")
            data.pop("site", None)
            message = data.pop("message", "")
            style = "bold red" if ev.type in ("power_lost", "low_battery", "device_offline", "retention_low",
                                             "power_suspected_lost", "camera_offline", "export_failed") else ""
            rest = json.dumps(data, ensure_ascii=False, separators=(",", ":")) if data else ""
            rows.append(Text.assemble((ev.time.astimezone(TZ).strftime("%H:%M "), "dim"),
                                      (f"{ev.type} {who} ", style), rest, (f"  {message}" if message else "", "italic"),
                                      no_wrap=True, overflow="ellipsis"))
        if not rows and height > 1:
            rows.append(Text(_("(none yet)"), style="dim"))
        return Group(Text(_("Events on anninh/bridge/event (newest last)"), style="bold magenta", no_wrap=True,
                          overflow="ellipsis"), *rows)

    @staticmethod
    def _summary(kind: str, st: dict[str, Any], error: str | None) -> str:
        if error:
            return tr("offline: {error}", error=error)
        if kind == "ups":
            return tr("{status}  charge {charge}%  runtime {runtime} s  in {voltage} V", status=st.get("status"),
                      charge=st.get("battery_charge"), runtime=st.get("battery_runtime"),
                      voltage=st.get("input_voltage"))
        if kind == "meter":
            return tr("mains {mains}  {voltage} V  {power} W", mains=_("yes") if st.get("mains") else _("NO"),
                      voltage=st.get("input_voltage"), power=st.get("power"))
        if kind == "light":
            mode = st.get("mode")
            return f"{light_words(st.get('state'), None)} [{_(MODES[mode]) if mode in MODES else mode}] " \
                f"{st.get('reason')}"
        bits = []
        for key in ("model", "motion", "tamper", "video_loss", "retention_days", "offline_cause"):
            if st.get(key) not in (None, False, {}):
                value = st[key]
                if isinstance(value, dict):
                    value = value.get("recorder", value)
                bits.append(f"{key}={value}")
        return "  ".join(bits)


MODES = {"auto": N_("auto"), "manual": N_("manual")}


def power_words() -> dict[str, str]:
    """A site's power state in words (msgids say "power" so the short words stand for nothing else)."""
    return {"ok": _("power ok"), "lost": _("power lost"), "unknown": _("power unknown"),
            "suspected": _("suspected cut")}


def light_words(state: str | None, mode: str | None) -> str:
    """A light's ``state`` and ``mode`` codes as a person reads them: "ON auto" / "BẬT tự động"."""
    words = [_({"ON": N_("ON"), "OFF": N_("OFF")}.get(state or "", "?"))]
    if mode:
        words.append(_(MODES.get(mode, mode)))
    return " ".join(words)


class _KeepRecords(logging.Handler):
    """Keeps warning lines in a deque while the full-screen view owns the terminal."""

    def __init__(self, into: deque[str]) -> None:
        super().__init__(logging.WARNING)
        self.into = into
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s",
                                            datefmt="%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(self.format(record))


def run_demo(args: argparse.Namespace) -> int:
    port = args.port if port_is_free("127.0.0.1", args.port) else free_port()
    with tempfile.TemporaryDirectory(prefix="anninh-demo-") as tmp:
        demo = Demo(args.speed, port, Path(tmp), lang=getattr(args, "lang", None))
        if not args.no_view:
            logging.getLogger().setLevel(logging.WARNING)
        return run_to_end(demo.run(args.duration, view=not args.no_view))
