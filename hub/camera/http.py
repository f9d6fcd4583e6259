"""Async HTTP for camera APIs (ISAPI, Dahua CGI) on httpx.

Authentication follows what every mature client does with these devices: the first request goes
out without credentials; the ``WWW-Authenticate`` challenge of the 401 picks Digest (preferred) or
Basic (only when the device offers nothing else). A 401 *after* authenticating raises
:class:`hub.api.AuthError`, so the hub retries slowly instead of locking the account out.
Timeouts and connection failures raise :class:`hub.api.DeviceError`. Credentials travel only in
the ``Authorization`` header: no URL built here ever contains them, and no message names them.

Example::

    http = CameraHttp("192.0.2.10", 80, username="admin", password="secret")
    body = await http.get_bytes("/ISAPI/System/deviceInfo")
    async with http.stream("/ISAPI/Event/notification/alertStream", read_timeout=60) as resp:
        async for chunk in resp.aiter_raw():
            ...
    await http.close()
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx

from hub.api import AuthError, DeviceError

MAX_BODY = 8 * 1024 * 1024
"""Largest response body read into memory (a JPEG snapshot of a 4K camera is ~1-2 MB)."""


class HttpStatusError(DeviceError):
    """The device answered with an HTTP error status (``status`` holds it)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _pick_auth(response: httpx.Response, username: str, password: str) -> httpx.Auth | None:
    offers = [h.strip() for h in response.headers.get_list("www-authenticate")]
    schemes = [h.split(" ", 1)[0].lower() for h in offers if h]
    if "digest" in schemes:
        return httpx.DigestAuth(username, password)
    if "basic" in schemes:
        return httpx.BasicAuth(username, password)
    return None


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
        scheme = "https" if https else "http"
        # Cameras ship self-signed certificates; certificate pinning is out of scope here.
        self._client = httpx.AsyncClient(
            base_url=f"{scheme}://{host}:{port}", timeout=timeout, verify=False, follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=2),
            headers={"User-Agent": "AnNinhHub", "Accept-Encoding": "identity"})  # raw bytes are read
        self._auth: httpx.Auth | None = None
        self.auth_scheme: str | None = None

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aclose()

    # ------------------------------------------------------------------ plumbing
    def _error(self, exc: Exception) -> DeviceError:
        if isinstance(exc, httpx.TimeoutException):
            return DeviceError(f"{self.where} did not answer in time ({type(exc).__name__})")
        if isinstance(exc, httpx.ConnectError):
            return DeviceError(f"cannot connect to {self.where}")
        if isinstance(exc, httpx.RemoteProtocolError | httpx.LocalProtocolError):
            return DeviceError(f"{self.where} broke the HTTP protocol")
        if isinstance(exc, httpx.TransportError):
            return DeviceError(f"connection to {self.where} failed ({type(exc).__name__})")
        return DeviceError(f"request to {self.where} failed ({type(exc).__name__})")

    def _auth_failed(self) -> AuthError:
        return AuthError(f"{self.where} refused the username or password (check the device's credentials)")

    async def _send(self, method: str, path: str, *, params: Mapping[str, Any] | None, content: bytes | None,
                    headers: Mapping[str, str] | None, timeout: httpx.Timeout | float | None) -> httpx.Response:
        """Send with the auth dance; returns an open (streaming) response. Caller closes it."""
        for attempt in range(2):
            request = self._client.build_request(method, path, params=params, content=content, headers=headers,
                                                 timeout=timeout if timeout is not None else self.timeout)
            try:
                response = await self._client.send(request, stream=True, auth=self._auth)
            except Exception as exc:
                raise self._error(exc) from None
            if response.status_code != 401:
                return response
            body = b""
            with contextlib.suppress(Exception):
                body = await response.aread()
            await response.aclose()
            if b"notActivated" in body[:4096]:
                raise AuthError(f"{self.where} is not activated yet: set its admin password with the vendor's "
                                "tool (SADP) or web page first")
            if self._auth is not None or attempt:
                raise self._auth_failed()
            auth = _pick_auth(response, self._username, self._password)
            if auth is None:
                raise AuthError(f"{self.where} asked for credentials without offering Digest or Basic")
            self._auth = auth
            self.auth_scheme = "digest" if isinstance(auth, httpx.DigestAuth) else "basic"
        raise self._auth_failed()  # pragma: no cover

    async def request(self, method: str, path: str, *, params: Mapping[str, Any] | None = None,
                      content: bytes | None = None, headers: Mapping[str, str] | None = None,
                      timeout: float | None = None, max_body: int = MAX_BODY) -> httpx.Response:
        """One call; the body is read (at most ``max_body`` bytes) and the response returned."""
        response = await self._send(method, path, params=params, content=content, headers=headers,
                                    timeout=timeout)
        try:
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_raw():
                size += len(chunk)
                if size > max_body:
                    raise DeviceError(f"{self.where} sent more than {max_body} bytes for {path.split('?')[0]}")
                chunks.append(chunk)
        except DeviceError:
            raise
        except Exception as exc:
            raise self._error(exc) from None
        finally:
            await response.aclose()
        response._content = b"".join(chunks)  # the raw bytes (cameras do not compress)
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
                     read_timeout: float = 60.0) -> AsyncIterator[httpx.Response]:
        """A long-lived GET (event streams). Each read waits at most ``read_timeout`` seconds."""
        timeout = httpx.Timeout(self.timeout, read=read_timeout)
        response = await self._send("GET", path, params=params, content=None, headers=None, timeout=timeout)
        try:
            if response.status_code >= 400:
                raise HttpStatusError(f"{self.where} answered HTTP {response.status_code} to "
                                      f"{path.split('?')[0]}", response.status_code)
            yield response
        finally:
            await response.aclose()

    async def iter_stream(self, response: httpx.Response) -> AsyncIterator[bytes]:
        """Raw chunks of a streaming response, with transport errors turned into DeviceError."""
        try:
            async for chunk in response.aiter_raw():
                yield chunk
        except Exception as exc:
            raise self._error(exc) from None
