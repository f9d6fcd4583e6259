"""Incremental multipart parser for camera event streams (``multipart/mixed`` and
``multipart/x-mixed-replace``), built for what real devices send rather than for RFC 2046:

* no closing ``--boundary--`` ever (the stream just stays open or is cut);
* a boundary in the body that differs from the header's (old Hikvision NVRs use a constant
  ``--boundary``), duplicated boundary lines, blank lines in odd places;
* several parts in one read, or one part split across many reads;
* ``Content-Length`` that is missing, has no space after the colon, excludes the trailing newline,
  or is simply wrong: XML parts end at their root's closing tag, text parts at ``Content-Length``
  rounded up to the end of the line (or at a blank line after content), binary parts (JPEG) at
  exactly ``Content-Length``, and every part at the next boundary line at the latest;
* stray junk between parts (Dahua sometimes sends a literal ``HTTP/1.1 200 OK`` line).

A part larger than ``max_part`` bytes is dropped (``dropped`` counts them) and the parser
resynchronises on the next boundary, so a malicious stream cannot eat memory.

Example::

    parser = MultipartParser(boundary_from_content_type(resp.headers["content-type"]))
    async for chunk in resp.aiter_raw():
        for part in parser.feed(chunk):
            handle(part.headers.get("content-type"), part.body)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_PART = 1024 * 1024
MAX_HEADER_LINE = 4096
MAX_HEADERS = 32
KNOWN_BOUNDARIES = (b"boundary", b"myboundary")
"""Constant boundaries vendors use in the body whatever the header says."""

_BOUNDARY_RE = re.compile(r'boundary\s*=\s*"?([^";,\s]+)"?', re.IGNORECASE)
_ROOT_RE = re.compile(rb"<([A-Za-z_][\w.\-]*:)?([A-Za-z_][\w.\-]*)")


def boundary_from_content_type(value: str | None) -> bytes | None:
    """``multipart/mixed;boundary=boundary`` → ``b"boundary"`` (None when there is none)."""
    if not value:
        return None
    m = _BOUNDARY_RE.search(value)
    if not m:
        return None
    b = m.group(1)
    if b.startswith("--"):
        b = b[2:]
    return b.encode("latin-1", "replace")[:70] or None


@dataclass(slots=True)
class Part:
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").lower()


_SKIP, _HEADERS, _BODY, _AFTER, _BINARY = range(5)


class MultipartParser:
    """Feed bytes, get complete parts. Never raises on input; never holds more than ~``max_part``."""

    def __init__(self, boundary: bytes | str | None = None, *, max_part: int = MAX_PART) -> None:
        self.boundaries: set[bytes] = set(KNOWN_BOUNDARIES)
        if isinstance(boundary, str):
            boundary = boundary.encode("latin-1", "replace")
        if boundary:
            self.boundaries.add(boundary[2:] if boundary.startswith(b"--") else boundary)
        self.max_part = max_part
        self.dropped = 0
        self.parts = 0
        self._buf = bytearray()
        self._pos = 0
        self._state = _SKIP
        self._seen_delimiter = False
        self._headers: dict[str, str] = {}
        self._body_start = 0
        self._cl: int | None = None
        self._root: bytes | None = None
        self._root_close: re.Pattern[bytes] | None = None
        self._is_xml: bool | None = None
        self._discard_line = False

    # ------------------------------------------------------------------ helpers
    def _is_delimiter(self, line: bytes) -> bool:
        if not line.startswith(b"--"):
            return False
        token = line[2:].rstrip()
        if token.endswith(b"--"):
            token = token[:-2]
        if token in self.boundaries:
            return True
        if not self._seen_delimiter and 0 < len(token) <= 70 and re.fullmatch(rb"[\w'()+,./:=?\-]+", token):
            self.boundaries.add(token)  # learn the body's real boundary from the first delimiter
            return True
        return False

    def _start_part(self) -> None:
        self._seen_delimiter = True
        self._state = _HEADERS
        self._headers = {}
        self._cl = None
        self._root = None
        self._root_close = None
        self._is_xml = None

    def _begin_body(self, start: int) -> None:
        self._body_start = start
        cl = self._headers.get("content-length", "").strip()
        self._cl = int(cl) if cl.isdigit() and len(cl) < 10 else None
        ctype = self._headers.get("content-type", "").lower()
        if (ctype.startswith(("image/", "video/", "application/octet-stream"))) and self._cl is not None:
            self._state = _BINARY
        else:
            self._state = _BODY

    def _emit(self, end: int, out: list[Part], strip: bool = True) -> None:
        body = bytes(self._buf[self._body_start:end])
        if strip:
            body = body.strip(b"\r\n")
        if body or self._headers:
            out.append(Part(self._headers, body))
            self.parts += 1
        self._headers = {}
        self._state = _AFTER

    def _drop(self) -> None:
        self.dropped += 1
        self._state = _SKIP
        self._headers = {}

    # ------------------------------------------------------------------ main loop
    def feed(self, data: bytes) -> list[Part]:
        out: list[Part] = []
        buf = self._buf
        buf += data
        while True:
            if self._state == _BINARY:
                assert self._cl is not None
                end = self._body_start + self._cl
                if self._cl > self.max_part:
                    self._drop()
                    self._discard_line = False
                    continue
                if len(buf) < end:
                    break
                self._emit(end, out, strip=False)
                self._pos = end
                continue
            nl = buf.find(b"\n", self._pos)
            if nl < 0:
                pending = len(buf) - self._pos
                if self._state == _BODY and len(buf) - self._body_start > self.max_part:
                    self._drop()
                    self._pos = len(buf)
                    self._discard_line = True
                elif self._state != _BODY and pending > MAX_HEADER_LINE:
                    if self._state == _HEADERS:
                        self._drop()
                    self._pos = len(buf)
                    self._discard_line = True
                break
            line_start = self._pos
            self._pos = nl + 1
            if self._discard_line:  # tail of an over-long line: ignore it
                self._discard_line = False
                continue
            line = bytes(buf[line_start:nl]).rstrip(b"\r")
            state = self._state
            if state == _BODY:
                if line.startswith(b"--") and self._is_delimiter(line):
                    self._emit(line_start, out)
                    self._start_part()
                    continue
                if self._pos - self._body_start > self.max_part:
                    self._drop()
                    continue
                if self._body_complete(line):
                    self._emit(self._pos, out)
                continue
            if state == _HEADERS:
                if line.startswith(b"--") and self._is_delimiter(line):
                    self._start_part()
                    continue
                stripped = line.strip()
                if not stripped:
                    if self._headers:
                        self._begin_body(self._pos)
                    continue
                name, sep, value = stripped.partition(b":")
                if sep and name and b" " not in name and b"<" not in name and b"=" not in name:
                    if len(self._headers) >= MAX_HEADERS:
                        self._drop()
                        continue
                    self._headers[name.decode("latin-1").lower()] = value.decode("latin-1").strip()
                    continue
                # no blank line before the body: this line is already content
                self._begin_body(line_start)
                if self._state == _BODY and self._body_complete(line):
                    self._emit(self._pos, out)
                continue
            # _SKIP / _AFTER: wait for a delimiter, ignore junk
            if line.startswith(b"--") and self._is_delimiter(line):
                self._start_part()
        # compact
        keep_from = self._pos
        if self._state in (_BODY, _BINARY):
            keep_from = min(keep_from, self._body_start)
        if keep_from:
            del buf[:keep_from]
            self._pos -= keep_from
            if self._state in (_BODY, _BINARY):
                self._body_start -= keep_from
        return out

    def _body_complete(self, line: bytes) -> bool:
        """Called at the end of each body line: is the part complete?"""
        if self._is_xml is None:
            head = line.lstrip()
            if not head:
                return False
            self._is_xml = head.startswith(b"<")
        if self._is_xml:
            if self._root is None:
                body = bytes(self._buf[self._body_start:self._pos])
                pos = 0
                while True:
                    i = body.find(b"<", pos)
                    if i < 0:
                        return False
                    if body[i + 1:i + 2] in (b"?", b"!"):
                        pos = i + 1
                        continue
                    m = _ROOT_RE.match(body, i)
                    if not m:
                        return False
                    self._root = m.group(2)
                    self._root_close = re.compile(rb"</(?:[\w.\-]+:)?" + re.escape(self._root) + rb"\s*>")
                    tail = body[m.end():]
                    if re.match(rb"[^>]*/>", tail) and b"<" not in tail.split(b"/>", 1)[0]:
                        return True  # <Root .../> self-closing
                    return bool(self._root_close.search(body))
            return b"</" in line and self._root_close is not None and bool(self._root_close.search(line))
        if self._cl is not None and self._pos - self._body_start >= self._cl:
            return True
        # text parts: a blank line after content ends the part (Dahua ends parts with an empty line,
        # and its Content-Length is not always right)
        return not line.strip() and bool(bytes(self._buf[self._body_start:self._pos]).strip())
