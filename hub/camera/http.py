"""Async HTTP for camera APIs (ISAPI, Dahua CGI) and snapshots, on aiohttp.

Authentication follows what every mature client does with these devices: the first request goes
out without credentials; the ``WWW-Authenticate`` challenge of the 401 picks Digest (preferred,
aiohttp's ``DigestAuthMiddleware``, which then answers each later challenge itself) or Basic (only
when the device offers nothing else). A 401 *after* authenticating raises
:class:`hub.api.AuthError`, so the hub retries slowly instead of locking the account out.
Timeouts and connection failures raise :class:`hub.api.DeviceError`. Credentials travel only in
the ``Authorization`` header: no URL built here ever contains them, and no message names them.

Why aiohttp rather than httpx (which this module used first): a snapshot is the largest thing
the hub reads on its event loop, and aiohttp reads it with its C parser in a few large reads;
httpx goes through h11, httpcore and anyio for every 64 KB. Measured on a 293 KB 1080p JPEG over
loopback: 0.3 ms of the loop's CPU against 1.2-1.6 ms, which is time an officer's command waits
when it arrives during a camera check (``bench/bench_health.py``).

Example::

    http = CameraHttp("192.0.2.10", 80, username="admin", password="secret")
    body = await http.get_bytes("/ISAPI/System/deviceInfo")
    async with http.stream("/ISAPI/Event/notification/alertStream", read_timeout=60) as resp:
        async for chunk in resp.aiter_raw():
            ...
    await http.close()
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
from multidict import CIMultiDictProxy

from hub.api import AuthError, DeviceError

MAX_BODY = 8 * 1024 * 1024
"""Largest response body read into memory (a JPEG snapshot of a 4K camera is ~1-2 MB)."""
READ_SIZE = 1024 * 1024
"""Largest single read of a body (aiohttp hands over what the socket had, up to this)."""


def split_url(url: str, default_host: str) -> tuple[str, int, bool, str]:
    """``(host, port, https, path?query)`` of an absolute URL such as a camera's snapshot URI, for
    :class:`CameraHttp` (which takes the origin and the path apart)."""
    parts = urlsplit(url)
    https = parts.scheme == "https"
    return (parts.hostname or default_host, parts.port or (443 if https else 80), https,
            urlunsplit(("", "", parts.path or "/", parts.query, "")))


class HttpStatusError(DeviceError):
    """The device answered with an HTTP error status (``status`` holds it)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class HttpResponse:
    """What callers use of a response: ``status_code``, ``headers`` (case-insensitive), ``content``
    (the body, read whole by :meth:`CameraHttp.request`), and :meth:`aiter_raw` for the chunks of a
    streaming one (:meth:`CameraHttp.stream`)."""

    def __init__(self, raw: aiohttp.ClientResponse, owner: CameraHttp) -> None:
        self._raw = raw
        self._owner = owner
        self.status_code: int = raw.status
        self.headers: CIMultiDictProxy[str] = raw.headers
        self.content: bytes = b""

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives, undecoded (cameras do not compress); transport errors are
        :class:`hub.api.DeviceError`."""
        try:
            while chunk := await self._raw.content.readany():
                yield chunk
        except Exception as exc:
            raise self._owner._error(exc) from None

    async def copy_from(self, offset: int, sink: Callable[[bytes], Awaitable[None]], where: str,
                        check_first: Callable[[bytes], None] | None = None) -> int:
        """Copy a download's body into ``sink`` from byte ``offset`` of the file: a 206 answer starts
        there; a device that ignored the ``Range`` sends the whole file again and the first ``offset``
        bytes are skipped here. ``check_first`` sees the first chunk of a download from the start (a
        recorder that answers an error document with 200). Returns the bytes given to ``sink``;
        :class:`hub.api.DeviceError` when fewer arrived than ``Content-Length`` promised."""
        skip = offset if self.status_code != 206 else 0
        sent = 0
        check = check_first if offset == 0 else None
        async for chunk in self.aiter_raw():
            if check is not None:
                check(chunk)
                check = None
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            await sink(chunk)
            sent += len(chunk)
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and sent < int(length) - (0 if self.status_code == 206 else offset):
            raise DeviceError(f"{where} ended the download early")
        return sent

    def close(self) -> None:
        """Drop the connection (a stream that is still running)."""
        self._raw.close()

    def release(self) -> None:
        """Give the connection back to the pool (the body was read whole)."""
        self._raw.release()


class CameraHttp:
    """One device's HTTP client. ``timeout`` applies to every ordinary call."""

    def __init__(self, host: str, port: int, *, username: str, password: str, https: bool = False,
                 timeout: float = 10.0, max_connections: int = 4) -> None:
        self.host = host
        self.port = port
        self.where = f"{host}:{port}"
        self._username = username
        self._password = password
        self.timeout = timeout
        self._base = f"{'https' if https else 'http'}://{host}:{port}"
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._basic: str | None = None
        self._digest: aiohttp.DigestAuthMiddleware | None = None
        self.auth_scheme: str | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # Cameras ship self-signed certificates; certificate pinning is out of scope here.
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=False)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=False, trust_env=False, read_bufsize=READ_SIZE,
                headers={"User-Agent": "AnNinhHub", "Accept-Encoding": "identity"})  # raw bytes are read
        return self._session

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            with contextlib.suppress(Exception):
                await session.close()

    # ------------------------------------------------------------------ plumbing
    def _error(self, exc: BaseException) -> DeviceError:
        if isinstance(exc, DeviceError):
            return exc
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            return DeviceError(f"{self.where} did not answer in time ({type(exc).__name__})")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return DeviceError(f"cannot connect to {self.where}")
        if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
            return DeviceError(f"{self.where} broke the HTTP protocol")
        if isinstance(exc, aiohttp.ClientError | OSError):
            return DeviceError(f"connection to {self.where} failed ({type(exc).__name__})")
        return DeviceError(f"request to {self.where} failed ({type(exc).__name__})")

    def _auth_failed(self) -> AuthError:
        return AuthError(f"{self.where} refused the username or password (check the device's credentials)")

    def _pick_auth(self, response: aiohttp.ClientResponse) -> None:
        offers = [h.strip() for h in response.headers.getall("WWW-Authenticate", [])]
        schemes = [h.split(" ", 1)[0].lower() for h in offers if h]
        if "digest" in schemes:
            self._digest = aiohttp.DigestAuthMiddleware(self._username, self._password)
            self.auth_scheme = "digest"
        elif "basic" in schemes:
            token = base64.b64encode(f"{self._username}:{self._password}".encode()).decode()
            self._basic = f"Basic {token}"
            self.auth_scheme = "basic"
        else:
            raise AuthError(f"{self.where} asked for credentials without offering Digest or Basic")

    async def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None, content: bytes | None,
                    headers: Mapping[str, str] | None, timeout: aiohttp.ClientTimeout | None) -> HttpResponse:
        """Send with the auth dance; returns an open (streaming) response. Caller closes it."""
        if timeout is None:
            timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=self.timeout)
        for attempt in range(2):
            if self._basic is not None:
                headers = {**(headers or {}), "Authorization": self._basic}
            kw: dict[str, Any] = {"params": params, "data": content, "headers": headers, "timeout": timeout,
                                  "allow_redirects": False}
            if self._digest is not None:
                kw["middlewares"] = (self._digest,)
            try:
                raw = await self._client().request(method, self._base + path, **kw)
            except Exception as exc:
                raise self._error(exc) from None
            if raw.status != 401:
                return HttpResponse(raw, self)
            body = b""
            with contextlib.suppress(Exception):
                body = await raw.content.read(4096)
            raw.close()
            if b"notActivated" in body:
                raise AuthError(f"{self.where} is not activated yet: set its admin password with the vendor's "
                                "tool (SADP) or web page first")
            if self.auth_scheme is not None or attempt:
                raise self._auth_failed()
            self._pick_auth(raw)
        raise self._auth_failed()  # pragma: no cover

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      content: bytes | None = None, headers: Mapping[str, str] | None = None,
                      timeout: float | None = None, max_body: int = MAX_BODY) -> HttpResponse:
        """One call; the body is read (at most ``max_body`` bytes) and the response returned."""
        response = await self._send(method, path, params=params, content=content, headers=headers,
                                    timeout=None if timeout is None else
                                    aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout))
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > max_body:
                    raise DeviceError(f"{self.where} sent more than {max_body} bytes for {path.split('?')[0]}")
                chunks.append(chunk)
        except BaseException:
            response.close()
            raise
        response.release()
        response.content = b"".join(chunks)
        return response

    async def get_bytes(self, path: str, *, params: Mapping[str, Any] | None = None,
                        timeout: float | None = None, allow: tuple[int, ...] = ()) -> bytes:
        """GET and return the body; an HTTP error status raises :class:`HttpStatusError`."""
        response = await self.request("GET", path, params=params, timeout=timeout)
        if response.status_code >= 400 and response.status_code not in allow:
            raise HttpStatusError(f"{self.where} answered HTTP {response.status_code} to "
                                  f"{path.split('?')[0]}", response.status_code)
        return response.content

    @contextlib.asynccontextmanager
    async def stream(self, path: str, *, params: Mapping[str, Any] | None = None,
                     read_timeout: float = 60.0, method: str = "GET", content: bytes | None = None,
                     headers: Mapping[str, str] | None = None,
                     allow: tuple[int, ...] = ()) -> AsyncIterator[HttpResponse]:
        """A long-lived GET (event streams) or any streamed body (recording downloads). Each read
        waits at most ``read_timeout`` seconds; statuses in ``allow`` do not raise."""
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=read_timeout)
        response = await self._send(method, path, params=params, content=content, headers=headers, timeout=timeout)
        try:
            if response.status_code >= 400 and response.status_code not in allow:
                raise HttpStatusError(f"{self.where} answered HTTP {response.status_code} to "
                                      f"{path.split('?')[0]}", response.status_code)
            yield response
        finally:
            response.close()
