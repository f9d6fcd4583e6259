"""A small HTTP/1.x server on raw asyncio streams, the base of the camera protocol simulators.

Raw streams (not a framework) so a simulator can reproduce what real devices do on the wire:
HTTP/1.0 replies without a length, multipart streams that are never closed, several parts per
write, Digest challenges in the vendor's realm style, a Basic-only legacy mode. It binds to
127.0.0.1 only.

Scenario controls every simulator inherits:

* ``await sim.reboot(seconds)`` — drop every connection and refuse new ones for a while;
* ``sim.freeze()`` / ``sim.unfreeze()`` — keep sockets open but stop answering (a hung device);
* ``sim.requests`` / ``sim.auth_failures`` — counters for tests (e.g. "no crash loop").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import parse_qsl, unquote, urlsplit

AuthMode = Literal["digest", "basic", "both", "none"]
MAX_REQUEST_BODY = 1024 * 1024

STATUS_TEXT = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               405: "Method Not Allowed", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class Request:
    method: str
    target: str
    path: str
    query: dict[str, str]
    query_list: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes
    version: str


StreamFn = Callable[[asyncio.StreamWriter], Awaitable[None]]


def byte_range(req: Request, total: int, honour: bool = True) -> tuple[int, int, dict[str, str]]:
    """``(status, first byte, headers)`` of a download of ``total`` bytes: ``Range: bytes=N-`` gives
    206 from byte N when ``honour`` (a recorder that ignores ranges answers 200 with the whole body)."""
    rng = req.headers.get("range", "")
    if honour and rng.startswith("bytes=") and rng[6:].rstrip("-").isdigit():
        skip = min(int(rng[6:].rstrip("-")), total)
        return 206, skip, {"Content-Length": str(total - skip), "Content-Range": f"bytes {skip}-{total - 1}/{total}"}
    return 200, 0, {"Content-Length": str(total)}


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    stream: StreamFn | None = None
    """For endless bodies: called with the writer after the headers; the connection closes after."""
    version: str = "HTTP/1.1"


def parse_auth_params(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i] in " ,":
            i += 1
        eq = value.find("=", i)
        if eq < 0:
            break
        key = value[i:eq].strip().lower()
        i = eq + 1
        if i < n and value[i] == '"':
            end = value.find('"', i + 1)
            if end < 0:
                end = n
            out[key] = value[i + 1:end]
            i = end + 1
        else:
            end = value.find(",", i)
            if end < 0:
                end = n
            out[key] = value[i:end].strip()
            i = end
    return out


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


class SimHttpServer:
    """Subclass and implement :meth:`handle`. Bind to 127.0.0.1 on ``port`` (0 = any free port)."""

    realm = "Simulator"
    unauthorized_body = b""
    unauthorized_type = "text/html"
    digest_extra = ""

    def __init__(self, *, username: str = "admin", password: str = "admin", auth: AuthMode = "digest",
                 port: int = 0, host: str = "127.0.0.1") -> None:
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("simulators bind to loopback only")
        self.host = host
        self.username = username
        self.password = password
        self.auth_mode: AuthMode = auth
        self.port = port
        self.requests = 0
        self.auth_failures = 0
        self.paths: list[str] = []
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._nonces: dict[str, float] = {}
        self._frozen = asyncio.Event()
        self._frozen.set()  # set = running
        self._freeze_after: int | None = None  # freeze_download_after's scenario
        self._reboot_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> SimHttpServer:
        self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._reboot_task is not None:
            self._reboot_task.cancel()
            with contextlib.suppress(BaseException):
                await self._reboot_task
        self._frozen.set()
        await self._close_listener()
        self.drop_connections()

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    def drop_connections(self) -> None:
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                w.transport.abort()
        self._writers.clear()

    async def reboot(self, seconds: float = 2.0) -> None:
        """Drop all connections and refuse new ones for ``seconds``; then listen again (same port)."""
        await self._close_listener()
        self.drop_connections()
        self._nonces.clear()

        async def come_back() -> None:
            await asyncio.sleep(seconds)
            self._server = await asyncio.start_server(self._client, self.host, self.port, reuse_address=True)

        self._reboot_task = asyncio.get_running_loop().create_task(come_back())

    def freeze(self) -> None:
        """Stop answering (requests hang, streams stall) while keeping sockets open."""
        self._frozen.clear()

    def unfreeze(self) -> None:
        self._frozen.set()

    def freeze_download_after(self, sent: int) -> None:
        """Scenario: freeze (as :meth:`freeze`) once a download has sent ``sent`` bytes: a recorder
        that hangs mid-file, at a moment a test can rely on."""
        self._freeze_after = sent

    @property
    def frozen(self) -> bool:
        return not self._frozen.is_set()

    async def wait_unfrozen(self) -> None:
        await self._frozen.wait()

    async def send_download_chunk(self, writer: asyncio.StreamWriter, chunk: bytes, sent: int,
                                  drop: int | None) -> bool:
        """Write one chunk of a download that has ``sent`` bytes out: a frozen device stalls first; a
        scenario that breaks the connection after ``drop`` bytes writes what fits and aborts.
        Returns False once the connection is broken."""
        if drop is not None and sent + len(chunk) > drop:
            writer.write(chunk[:drop - sent])
            await writer.drain()
            writer.transport.abort()
            return False
        if self._freeze_after is not None and sent >= self._freeze_after:
            self._freeze_after = None
            self.freeze()
        if self.frozen:
            await self.wait_unfrozen()
        writer.write(chunk)
        await writer.drain()
        return True

    # ------------------------------------------------------------------ auth
    def _challenge(self, stale: bool = False) -> list[tuple[str, str]]:
        nonce = os.urandom(16).hex()
        if len(self._nonces) > 1000:
            self._nonces.clear()
        self._nonces[nonce] = time.monotonic()
        out = []
        if self.auth_mode in ("digest", "both"):
            out.append(("WWW-Authenticate", self.digest_challenge(nonce, stale)))
        if self.auth_mode in ("basic", "both"):
            out.append(("WWW-Authenticate", f'Basic realm="{self.realm}"'))
        return out

    def digest_challenge(self, nonce: str, stale: bool) -> str:
        return (f'Digest qop="auth", realm="{self.realm}", nonce="{nonce}", '
                f'stale="{"TRUE" if stale else "FALSE"}"{self.digest_extra}')

    def _check_auth(self, req: Request) -> tuple[bool, bool]:
        """(ok, stale)."""
        if self.auth_mode == "none":
            return True, False
        value = req.headers.get("authorization", "")
        scheme, _, rest = value.partition(" ")
        scheme = scheme.lower()
        if scheme == "basic" and self.auth_mode in ("basic", "both"):
            try:
                user, _, pw = base64.b64decode(rest.strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False, False
            return (user == self.username and pw == self.password), False
        if scheme == "digest" and self.auth_mode in ("digest", "both"):
            p = parse_auth_params(rest)
            nonce = p.get("nonce", "")
            if p.get("username") != self.username or p.get("realm") != self.realm:
                return False, False
            ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
            ha2 = _md5(f"{req.method}:{p.get('uri', '')}")
            if p.get("qop"):
                expect = _md5(f"{ha1}:{nonce}:{p.get('nc', '')}:{p.get('cnonce', '')}:{p.get('qop')}:{ha2}")
            else:
                expect = _md5(f"{ha1}:{nonce}:{ha2}")
            if p.get("response") != expect:
                return False, False
            if nonce not in self._nonces:
                return False, True
            return True, False
        return False, False

    # ------------------------------------------------------------------ protocol
    async def handle(self, req: Request) -> Response:  # pragma: no cover - abstract
        return Response(404, b"not found")

    def needs_auth(self, req: Request) -> bool:
        return True

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        if len(parts) != 3:
            return None
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        body = b""
        length = headers.get("content-length", "0")
        if length.isdigit() and 0 < int(length) <= MAX_REQUEST_BODY:
            try:
                body = await reader.readexactly(int(length))
            except (asyncio.IncompleteReadError, ConnectionError):
                return None
        split = urlsplit(target)
        qlist = parse_qsl(split.query, keep_blank_values=True)
        return Request(method=method.upper(), target=target, path=unquote(split.path), query=dict(qlist),
                       query_list=qlist, headers=headers, body=body, version=version)

    @staticmethod
    def _head(resp: Response, keep_alive: bool, length: int | None) -> bytes:
        lines = [f"{resp.version} {resp.status} {STATUS_TEXT.get(resp.status, 'Status')}"]
        headers = {"Content-Type": resp.content_type, **resp.headers}
        for k, v in headers.items():
            if k.lower() != "www-authenticate":
                lines.append(f"{k}: {v}")
        if length is not None:
            lines.append(f"Content-Length: {length}")
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
        return ("\r\n".join(lines) + "\r\n").encode("latin-1")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                req = await self._read_request(reader)
                if req is None:
                    return
                await self._frozen.wait()
                self.requests += 1
                self.paths.append(req.path)
                if len(self.paths) > 10000:
                    del self.paths[:5000]
                keep_alive = req.version == "HTTP/1.1" and req.headers.get("connection", "").lower() != "close"
                if self.needs_auth(req):
                    ok, stale = self._check_auth(req)
                    if not ok:
                        if req.headers.get("authorization"):
                            self.auth_failures += 1
                        resp = Response(401, self.unauthorized_body, self.unauthorized_type)
                        head = self._head(resp, keep_alive, len(resp.body))
                        extra = "".join(f"{k}: {v}\r\n" for k, v in self._challenge(stale))
                        writer.write(head + extra.encode("latin-1") + b"\r\n" + resp.body)
                        await writer.drain()
                        if not keep_alive:
                            return
                        continue
                try:
                    resp = await self.handle(req)
                except Exception as exc:  # a simulator bug must show up, not kill the server
                    resp = Response(500, f"simulator error: {type(exc).__name__}: {exc}".encode())
                await self._frozen.wait()
                if resp.stream is not None:
                    writer.write(self._head(resp, False, None) + b"\r\n")
                    await writer.drain()
                    await resp.stream(writer)
                    return
                if resp.version == "HTTP/1.0":
                    keep_alive = False
                writer.write(self._head(resp, keep_alive, len(resp.body)) + b"\r\n" + resp.body)
                await writer.drain()
                if not keep_alive:
                    return
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()
