"""Simulated relays for the ``lighting`` plugin: Modbus relay boards and a Tasmota-like MQTT relay.

Relay boards (one Modbus TCP listener, one or many unit ids)::

    sim = RelayBoardSimulator(boards={1: "waveshare", 2: "r4d3b16"}, port=0)
    await sim.start(); sim.port
    sim.relay(1, 0)                  # True/False: relay 0 of unit 1
    sim.ignore_writes = True         # every board acknowledges writes but the relays do not move
    sim.board(1).ignore = {3}        # ... or only channel 3 of unit 1
    sim.press(1, 0)                  # someone flips relay 0 by hand
    await sim.stop()

``waveshare`` boards answer FC01 (read coils), FC05 (0xFF00 on / 0x0000 off / 0x5500 toggle;
0x00FF = all relays; **0x0200+ch = flash ON**: on now, off after value × 100 ms; 0x0400+ch =
flash OFF), FC0F, and FC03 0x4000 (address) / 0x8000 (version). Command-word boards (profiles of
:data:`plugins.lighting.relays.PROFILES`) answer FC06 command words (0x0100 on, 0x0200 off,
0x0300 toggle, 0x06SS on-then-off after SS s, 0x0600 cancel; while a delay runs a plain OFF is
ignored, as on RYN4 boards) and FC03 state (1/0).

Tasmota relay on an MQTT broker::

    t = TasmotaSimulator(broker_port, topic="tasmota_5e1a2b", relays=1); t.start(); ...; t.stop()

Command line: ``python -m plugins.lighting.simulator board --board waveshare --port 5021`` or
``python -m plugins.lighting.simulator tasmota --broker-port 1883 --topic tasmota_5e1a2b``
(also ``anninh simulate lighting`` / ``anninh simulate tasmota``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import struct
import sys
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pymodbus import FramerType
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.pdu import ExceptionResponse, ModbusPDU
from pymodbus.server import ModbusTcpServer

from .relays import PROFILES, WAVESHARE_FLASH_OFF, WAVESHARE_FLASH_ON

BOARD_KINDS = ("waveshare", *PROFILES)


class Board:
    """One simulated relay board (unit id)."""

    def __init__(self, unit: int, kind: str, channels: int = 8) -> None:
        if kind not in BOARD_KINDS:
            raise ValueError(f"unknown board {kind!r} (known: {', '.join(BOARD_KINDS)})")
        self.unit, self.kind, self.channels = unit, kind, channels
        self.relays = [False] * channels
        self.ignore: bool | set[int] = False
        self.dead = False
        self.writes: list[tuple[int, int, int]] = []
        """Every write received: (function code, address, raw value)."""
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self._last_word: dict[int, int] = {}
        self.profile = PROFILES.get(kind)

    def ignores(self, ch: int, sim_ignore: bool) -> bool:
        return sim_ignore or self.ignore is True or (isinstance(self.ignore, set) and ch in self.ignore)

    def cancel_timer(self, ch: int) -> None:
        t = self._timers.pop(ch, None)
        if t is not None:
            t.cancel()

    def timer_running(self, ch: int) -> bool:
        return ch in self._timers

    def set_after(self, ch: int, seconds: float, value: bool) -> None:
        self.cancel_timer(ch)

        def fire() -> None:
            self._timers.pop(ch, None)
            self.relays[ch] = value

        self._timers[ch] = asyncio.get_running_loop().call_later(seconds, fire)


class _BoardContext(ModbusServerContext):
    def __init__(self, sim: RelayBoardSimulator) -> None:  # we are the datastore
        self.sim = sim
        self.old_simulator = True
        self.simdevices = []

    def _board(self, device_id: int) -> Board:
        b = self.sim.boards.get(device_id)
        if b is None or b.dead:
            raise NoSuchIdException(f"unit {device_id} does not answer")
        return b

    async def async_getValues(self, device_id: int, func_code: int, address: int,
                              count: int = 1) -> list[int] | list[bool] | ExcCodes:
        b = self._board(device_id)
        if func_code in (1, 5, 15):
            if b.kind != "waveshare" or address + count > b.channels:
                return ExcCodes.ILLEGAL_ADDRESS
            return list(b.relays[address: address + count])
        if func_code == 3:
            if b.kind == "waveshare":
                if (address, count) == (0x4000, 1):
                    return [b.unit]
                if (address, count) == (0x8000, 1):
                    return [100]
                return ExcCodes.ILLEGAL_ADDRESS
            assert b.profile is not None
            first = address - b.profile.register_base
            if first < 0 or first + count > b.channels:
                return ExcCodes.ILLEGAL_ADDRESS
            return [int(v) for v in b.relays[first: first + count]]
        if func_code == 6:
            return [b._last_word.get(address, 0)]
        return ExcCodes.ILLEGAL_FUNCTION

    async def async_setValues(self, device_id: int, func_code: int, address: int,
                              values: Sequence[int] | Sequence[bool]) -> ExcCodes | None:
        b = self._board(device_id)
        if func_code == 15 and b.kind == "waveshare":
            if address + len(values) > b.channels:
                return ExcCodes.ILLEGAL_ADDRESS
            for i, v in enumerate(values):
                b.writes.append((15, address + i, int(bool(v))))
                if not b.ignores(address + i, self.sim.ignore_writes):
                    b.cancel_timer(address + i)
                    b.relays[address + i] = bool(v)
            return None
        if func_code == 6 and b.profile is not None:
            return self._command_word(b, address, int(values[0]))
        return ExcCodes.ILLEGAL_FUNCTION

    def _command_word(self, b: Board, address: int, word: int) -> ExcCodes | None:
        p = b.profile
        assert p is not None
        b.writes.append((6, address, word))
        b._last_word[address] = word
        if address == 0 and p.register_base == 1:  # all channels
            if word in (0x0700, 0x0800):
                for ch in range(b.channels):
                    if not b.ignores(ch, self.sim.ignore_writes):
                        b.relays[ch] = word == 0x0700
                return None
            return ExcCodes.ILLEGAL_VALUE
        ch = address - p.register_base
        if not 0 <= ch < b.channels:
            return ExcCodes.ILLEGAL_ADDRESS
        ignored = b.ignores(ch, self.sim.ignore_writes)
        if word == p.on:
            if not ignored:
                b.relays[ch] = True
        elif word == p.off:
            if not ignored and not b.timer_running(ch):  # RYN4: plain OFF is ignored while a delay runs
                b.relays[ch] = False
        elif word == 0x0300 and p.delay is not None:
            if not ignored:
                b.relays[ch] = not b.relays[ch]
        elif p.delay is not None and word & 0xFF00 == p.delay:
            seconds = word & 0xFF
            if seconds == 0:
                b.cancel_timer(ch)
            elif not ignored:
                b.relays[ch] = True
                b.set_after(ch, seconds * self.sim.time_scale, False)
        else:
            return ExcCodes.ILLEGAL_VALUE
        return None

    async def write_coil_raw(self, device_id: int, address: int, raw: int) -> ExcCodes | None:
        b = self._board(device_id)
        if b.kind != "waveshare":
            return ExcCodes.ILLEGAL_FUNCTION
        b.writes.append((5, address, raw))
        if address == 0x00FF:
            targets = list(range(b.channels))
        elif address < b.channels:
            targets = [address]
        elif WAVESHARE_FLASH_ON <= address < WAVESHARE_FLASH_ON + b.channels or \
                WAVESHARE_FLASH_OFF <= address < WAVESHARE_FLASH_OFF + b.channels:
            ch = address & 0xFF
            if not 0 < raw <= 0x7FFF:
                return ExcCodes.ILLEGAL_VALUE
            if not b.ignores(ch, self.sim.ignore_writes):
                on_first = address < WAVESHARE_FLASH_OFF
                b.relays[ch] = on_first
                b.set_after(ch, raw * 0.1 * self.sim.time_scale, not on_first)
            return None
        else:
            return ExcCodes.ILLEGAL_ADDRESS
        if raw not in (0xFF00, 0x0000, 0x5500):
            return ExcCodes.ILLEGAL_VALUE
        for ch in targets:
            if b.ignores(ch, self.sim.ignore_writes):
                continue
            b.cancel_timer(ch)  # plain ON/OFF cancels a running flash
            b.relays[ch] = (not b.relays[ch]) if raw == 0x5500 else raw == 0xFF00
        return None

    def device_ids(self) -> list[int]:
        return list(self.sim.boards)


class RawWriteCoilPDU(ModbusPDU):
    """Server side FC05 that keeps the raw 16-bit value (flash commands) and echoes it."""

    function_code = 5
    rtu_frame_size = 8

    def __init__(self, dev_id: int = 0, transaction_id: int = 0, address: int = 0, raw: int = 0, **kw: Any) -> None:
        super().__init__(dev_id=dev_id, transaction_id=transaction_id, address=address)
        self.raw = raw

    def encode(self) -> bytes:
        return struct.pack(">HH", self.address, self.raw)

    def decode(self, data: bytes) -> None:
        self.address, self.raw = struct.unpack(">HH", data[:4])

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        rc = await context.write_coil_raw(device_id, self.address, self.raw)
        if rc:
            return ExceptionResponse(self.function_code, rc)
        return RawWriteCoilPDU(dev_id=self.dev_id, transaction_id=self.transaction_id, address=self.address,
                               raw=self.raw)


class RelayBoardSimulator:
    """Simulated Modbus relay boards behind one TCP (or RTU-over-TCP) listener on loopback."""

    def __init__(self, boards: Mapping[int, str] | None = None, *, port: int = 0, host: str = "127.0.0.1",
                 channels: int = 8, framer: str = "socket", time_scale: float = 1.0) -> None:
        self.boards = {u: Board(u, k, channels) for u, k in (boards or {1: "waveshare"}).items()}
        self.host, self.port = host, port
        self.framer = FramerType.RTU if framer == "rtu" else FramerType.SOCKET
        self.ignore_writes = False
        self.time_scale = time_scale
        """Multiplies hardware timer durations (e.g. 0.01 to see a 10 s flash end after 0.1 s)."""
        self.server: ModbusTcpServer | None = None

    def board(self, unit: int) -> Board:
        return self.boards[unit]

    def relay(self, unit: int, channel: int) -> bool:
        return self.boards[unit].relays[channel]

    def press(self, unit: int, channel: int, value: bool | None = None) -> None:
        """Someone switches the relay by hand (or another controller does)."""
        b = self.boards[unit]
        b.cancel_timer(channel)
        b.relays[channel] = (not b.relays[channel]) if value is None else value

    async def start(self) -> RelayBoardSimulator:
        if self.server is None:
            server = ModbusTcpServer(_BoardContext(self), framer=self.framer, address=(self.host, self.port),
                                     ignore_missing_devices=True, custom_pdu=[RawWriteCoilPDU])
            await server.serve_forever(background=True)
            self.server = server
            sockets = getattr(server.transport, "sockets", None)
            if sockets:
                self.port = int(sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.shutdown()
        for b in self.boards.values():
            for ch in list(b._timers):
                b.cancel_timer(ch)

    async def __aenter__(self) -> RelayBoardSimulator:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class TasmotaSimulator:
    """A Tasmota-like relay on an MQTT broker: answers ``cmnd/<topic>/POWER[n]`` (ON, OFF,
    TOGGLE, empty = query) with ``stat/<topic>/RESULT`` and ``stat/<topic>/POWER[n]``, and keeps
    ``tele/<topic>/LWT`` Online (retained; Offline as its last will)."""

    def __init__(self, broker_port: int, topic: str = "tasmota_5e1a2b", relays: int = 1,
                 broker_host: str = "127.0.0.1") -> None:
        self.topic, self.relays = topic, [False] * relays
        self.broker = (broker_host, broker_port)
        self.ignore_writes = False
        self.commands: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{topic}-{uuid.uuid4().hex[:4]}")
        self.client.will_set(f"tele/{topic}/LWT", "Offline", 1, True)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message

    def _on_connect(self, c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        if rc.is_failure:
            return
        c.subscribe(f"cmnd/{self.topic}/#", 1)
        c.publish(f"tele/{self.topic}/LWT", "Online", 1, True)
        self.connected.set()

    def _key(self, n: int) -> str:
        return f"POWER{n + 1}" if len(self.relays) > 1 else "POWER"

    def _report(self, n: int) -> None:
        word = "ON" if self.relays[n] else "OFF"
        self.client.publish(f"stat/{self.topic}/RESULT", json.dumps({self._key(n): word}), 1, False)
        self.client.publish(f"stat/{self.topic}/{self._key(n)}", word, 1, False)

    def _on_message(self, c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        cmd = msg.topic.rsplit("/", 1)[-1].upper()
        if not cmd.startswith("POWER"):
            return
        n = int(cmd[5:] or "1") - 1
        if not 0 <= n < len(self.relays):
            return
        word = msg.payload.decode("utf-8", "replace").strip().upper()
        with self._lock:
            self.commands.append((cmd, word))
            if not self.ignore_writes:
                if word in ("ON", "1"):
                    self.relays[n] = True
                elif word in ("OFF", "0"):
                    self.relays[n] = False
                elif word in ("TOGGLE", "2"):
                    self.relays[n] = not self.relays[n]
            self._report(n)

    def press(self, n: int = 0) -> None:
        """The button on the device: toggle and report."""
        with self._lock:
            self.relays[n] = not self.relays[n]
            self._report(n)

    def start(self, timeout: float = 5.0) -> TasmotaSimulator:
        self.client.connect(*self.broker, keepalive=30)
        self.client.loop_start()
        if not self.connected.wait(timeout):
            raise TimeoutError("Tasmota simulator could not connect to the broker")
        return self

    def stop(self, graceful: bool = True) -> None:
        """Disconnect; ``graceful`` publishes LWT Offline first (as a restart would)."""
        if graceful:
            self.client.publish(f"tele/{self.topic}/LWT", "Offline", 1, True).wait_for_publish(2)
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()


# ====================================================================== command line
def _board_cli(args: argparse.Namespace) -> int:
    boards: dict[int, str] = {}
    for spec in args.unit or []:
        num, _, kind = spec.partition("=")
        boards[int(num)] = kind
    boards = boards or {1: args.board}
    for kind in boards.values():
        if kind not in BOARD_KINDS:
            print(f"unknown board {kind!r}; known: {', '.join(BOARD_KINDS)}", file=sys.stderr)
            return 2

    async def run() -> int:
        sim = RelayBoardSimulator(boards, port=args.port, host=args.host, channels=args.channels,
                                  framer=args.framer)
        await sim.start()
        print(f"relay board simulator on {args.host}:{sim.port}; units: "
              + ", ".join(f"{u}={b.kind}" for u, b in sim.boards.items()), flush=True)
        print("stdin: 'show', '[UNIT] press CH', 'ignore on|off', 'quit'", flush=True)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, done.set)

        def on_stdin() -> None:
            line = sys.stdin.readline()
            if not line:
                loop.remove_reader(sys.stdin)
                return
            words = line.split()
            unit = int(words.pop(0)) if words and words[0].isdigit() else next(iter(sim.boards))
            if not words:
                return
            if words[0] in ("quit", "exit"):
                done.set()
            elif words[0] == "show":
                for u, b in sim.boards.items():
                    print(f"unit {u} ({b.kind}): " + " ".join("1" if r else "0" for r in b.relays), flush=True)
            elif words[0] == "press" and len(words) > 1 and words[1].isdigit():
                sim.press(unit, int(words[1]))
                print(f"unit {unit} relay {words[1]} -> {sim.relay(unit, int(words[1]))}", flush=True)
            elif words[0] == "ignore" and len(words) > 1:
                sim.ignore_writes = words[1] == "on"
                print(f"ignore writes: {sim.ignore_writes}", flush=True)
            else:
                print("unknown command", flush=True)

        with contextlib.suppress(OSError, ValueError, PermissionError):
            loop.add_reader(sys.stdin, on_stdin)
        try:
            await done.wait()
        finally:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(sys.stdin)
            await sim.stop()
        return 0

    try:
        return asyncio.run(run())
    except KeyboardInterrupt:
        return 0


def _tasmota_cli(args: argparse.Namespace) -> int:
    sim = TasmotaSimulator(args.broker_port, topic=args.topic, relays=args.relays, broker_host=args.broker_host)
    sim.start()
    print(f"Tasmota simulator '{args.topic}' on {args.broker_host}:{args.broker_port}; "
          "stdin: 'press [N]', 'show', 'quit'", flush=True)
    stop = threading.Event()
    with contextlib.suppress(ValueError):
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            line = sys.stdin.readline()
            if not line:
                while not stop.is_set():
                    time.sleep(0.5)
                break
            words = line.split()
            if not words:
                continue
            if words[0] in ("quit", "exit"):
                break
            if words[0] == "press":
                sim.press(int(words[1]) - 1 if len(words) > 1 else 0)
            print("relays: " + " ".join("ON" if r else "OFF" for r in sim.relays), flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()
    return 0


def build_parser(default: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anninh simulate lighting", description="Simulated relays for street lights.")
    sub = p.add_subparsers(dest="what", required=default is None)
    b = sub.add_parser("board", help="Modbus TCP relay board(s)")
    b.add_argument("--board", default="waveshare", choices=BOARD_KINDS, help="board type of unit 1")
    b.add_argument("--unit", action="append", metavar="ID=BOARD", help="serve unit ID as BOARD (repeatable)")
    b.add_argument("--channels", type=int, default=8)
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, default=5021)
    b.add_argument("--framer", choices=("socket", "rtu"), default="socket")
    b.set_defaults(func=_board_cli)
    t = sub.add_parser("tasmota", help="a Tasmota-like MQTT relay")
    t.add_argument("--broker-host", default="127.0.0.1")
    t.add_argument("--broker-port", type=int, default=1883)
    t.add_argument("--topic", default="tasmota_5e1a2b")
    t.add_argument("--relays", type=int, default=1)
    t.set_defaults(func=_tasmota_cli)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


def tasmota_main(argv: list[str] | None = None) -> int:
    return main(["tasmota", *(argv or [])])


def board_main(argv: list[str] | None = None) -> int:
    return main(["board", *(argv or [])]) if not argv or argv[0] not in ("board", "tasmota") else main(argv)


if __name__ == "__main__":
    sys.exit(main())
