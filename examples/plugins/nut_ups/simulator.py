"""A NUT server (upsd) with simulated UPS units, for tests and `anninh simulate nut_ups`.

Written from NUT's network protocol documentation (developer guide, "Network protocol
information"; TCP port 3493, one command per line, answers per line):

* ``LIST UPS`` → ``BEGIN LIST UPS`` / ``UPS <name> "<description>"`` ... / ``END LIST UPS``;
* ``LIST VAR <ups>`` → ``BEGIN LIST VAR <ups>`` / ``VAR <ups> <var> "<value>"`` ... / ``END LIST VAR <ups>``;
* ``GET VAR <ups> <var>`` → ``VAR <ups> <var> "<value>"``;
* ``USERNAME <name>``, ``PASSWORD <pw>`` → ``OK`` (checked at ``LOGIN <ups>``: ``OK`` or
  ``ERR ACCESS-DENIED``); ``LOGOUT`` → ``OK Goodbye``; ``VER``, ``NETVER``;
* errors: ``ERR UNKNOWN-UPS``, ``ERR VAR-NOT-SUPPORTED``, ``ERR DATA-STALE`` (the driver lost
  its UPS), ``ERR USERNAME-REQUIRED``, ``ERR PASSWORD-REQUIRED``, ``ERR ALREADY-SET-USERNAME``,
  ``ERR ALREADY-SET-PASSWORD``, ``ERR ALREADY-LOGGED-IN``, ``ERR INVALID-ARGUMENT``,
  ``ERR UNKNOWN-COMMAND``.

Values are quoted, with ``"`` and ``\\`` escaped by a backslash. Variable names and status tokens
are NUT's (docs/nut-names: ``ups.status`` ``OL``/``OB``/``LB``/``CHRG``/``DISCHRG``/``ALARM``...,
``ups.alarm``, ``battery.charge``, ``battery.runtime``, ``input.voltage``, ``ups.load``...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

ON_LINE = {"device.mfr": "APC", "device.model": "Smart-UPS 1500", "device.type": "ups",
           "ups.mfr": "APC", "ups.model": "Smart-UPS 1500", "ups.serial": "AS1234567890",
           "ups.firmware": "UPS 09.6 / ID=18", "ups.status": "OL CHRG", "battery.charge": "100",
           "battery.runtime": "2400", "battery.voltage": "27.3", "input.voltage": "229.5",
           "output.voltage": "229.5", "ups.load": "23", "driver.name": "apc_modbus"}


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class NutServer:
    """upsd with UPS units named in ``units`` (name → variables); ``users`` name → (password, UPS names)."""

    def __init__(self, units: dict[str, dict[str, str]] | None = None,
                 users: dict[str, tuple[str, set[str]]] | None = None, host: str = "127.0.0.1", port: int = 0) -> None:
        self.units = units if units is not None else {"ups1": dict(ON_LINE)}
        self.users = users or {}
        self.stale: set[str] = set()
        self.host, self.port = host, port
        self.logins: list[tuple[str, str]] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------------ scenario
    def mains_lost(self, ups: str = "ups1", charge: int = 80, runtime: int = 1500) -> None:
        self.units[ups].update({"ups.status": "OB DISCHRG", "battery.charge": str(charge),
                                "battery.runtime": str(runtime), "input.voltage": "0.0"})

    def mains_back(self, ups: str = "ups1") -> None:
        self.units[ups].update({"ups.status": "OL CHRG", "input.voltage": "229.5"})

    # ------------------------------------------------------------------ protocol
    def _answer(self, words: list[str], session: dict[str, str | None]) -> list[str]:
        cmd = [w.upper() for w in words[:2]]
        if cmd[:2] == ["LIST", "UPS"] and len(words) == 2:
            return ["BEGIN LIST UPS", *(f"UPS {n} {quote(v.get('device.model', n))}" for n, v in self.units.items()),
                    "END LIST UPS"]
        if cmd[:2] == ["LIST", "VAR"] and len(words) == 3:
            ups = words[2]
            if ups not in self.units:
                return ["ERR UNKNOWN-UPS"]
            if ups in self.stale:
                return ["ERR DATA-STALE"]
            return [f"BEGIN LIST VAR {ups}", *(f"VAR {ups} {k} {quote(v)}" for k, v in self.units[ups].items()),
                    f"END LIST VAR {ups}"]
        if cmd[:2] == ["GET", "VAR"] and len(words) == 4:
            ups, var = words[2], words[3]
            if ups not in self.units:
                return ["ERR UNKNOWN-UPS"]
            if ups in self.stale:
                return ["ERR DATA-STALE"]
            if var not in self.units[ups]:
                return ["ERR VAR-NOT-SUPPORTED"]
            return [f"VAR {ups} {var} {quote(self.units[ups][var])}"]
        if cmd[0] in ("USERNAME", "PASSWORD") and len(words) == 2:
            key = cmd[0].lower()
            if session.get(key) is not None:
                return [f"ERR ALREADY-SET-{cmd[0]}"]
            session[key] = words[1]
            return ["OK"]
        if cmd[0] == "LOGIN" and len(words) == 2:
            return [self._login(words[1], session)]
        if cmd[0] == "VER" and len(words) == 1:
            return ["Network UPS Tools upsd 2.8.1 - https://www.networkupstools.org/"]
        if cmd[0] == "NETVER" and len(words) == 1:
            return ["1.3"]
        if cmd[0] in ("LIST", "GET", "USERNAME", "PASSWORD", "LOGIN"):
            return ["ERR INVALID-ARGUMENT"]
        return ["ERR UNKNOWN-COMMAND"]

    def _login(self, ups: str, session: dict[str, str | None]) -> str:
        if session.get("login"):
            return "ERR ALREADY-LOGGED-IN"
        if session.get("username") is None:
            return "ERR USERNAME-REQUIRED"
        if session.get("password") is None:
            return "ERR PASSWORD-REQUIRED"
        if ups not in self.units:
            return "ERR UNKNOWN-UPS"
        account = self.users.get(session["username"] or "")
        if account is None or account[0] != session["password"] or ups not in account[1]:
            return "ERR ACCESS-DENIED"
        session["login"] = ups
        self.logins.append((session["username"] or "", ups))
        return "OK"

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        session: dict[str, str | None] = {}
        try:
            while raw := await reader.readline():
                if len(raw) > 1024:
                    break
                try:
                    words = raw.decode("ascii").split()
                except UnicodeDecodeError:
                    words = ["?"]
                if not words:
                    continue
                if words[0].upper() == "LOGOUT":
                    writer.write(b"OK Goodbye\n")
                    break
                writer.write("".join(line + "\n" for line in self._answer(words, session)).encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def start(self) -> NutServer:
        self._server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._writers):
                w.close()
            await self._server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="anninh simulate nut_ups",
                                description="A NUT server (upsd) with one simulated UPS named ups1.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=3493)
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                   help="a upsd.users account allowed to LOGIN to ups1 (repeatable)")
    args = p.parse_args(argv)
    users = {u.partition(":")[0]: (u.partition(":")[2], {"ups1"}) for u in args.user}

    async def serve() -> None:
        sim = await NutServer(users=users, host=args.host, port=args.port).start()
        print(f"NUT server (upsd) on {args.host}:{sim.port}, UPS 'ups1' (try: upsc ups1@{args.host}:{sim.port})",
              flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0
