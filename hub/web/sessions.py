"""Sessions in signed and encrypted cookies, CSRF tokens, and sign-in throttling.

Why Fernet from ``cryptography`` and not aiohttp_session: ``cryptography`` is already a dependency (the
export's signatures) and Fernet is what aiohttp_session's EncryptedCookieStorage uses underneath;
the session here is four fields, so the 60 lines below replace a dependency. Fernet gives AES-128-CBC
with an HMAC-SHA256 over it and a timestamp, checked against the session's lifetime on every request.

The key is made once, in ``<data_dir>/web/session.key`` (0600), so a restart keeps people signed in.
A sign-out forgets the session's id on this hub (a copied cookie of a signed-out session is refused
until it expires, even if replayed); a user removed from the config loses access at once, because
every request looks the user up again.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from hub.config import Config, UserConfig

COOKIE = "anninh_session"


def _load_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
        Fernet(key)
        return key
    except (OSError, ValueError):
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return key


@dataclass
class Session:
    sid: str
    csrf: str
    user: str | None = None
    lang: str = "vi"
    since: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return json.dumps({"sid": self.sid, "csrf": self.csrf, "user": self.user, "lang": self.lang,
                           "since": self.since}, separators=(",", ":")).encode()

    @classmethod
    def new(cls, lang: str = "vi") -> Session:
        return cls(sid=secrets.token_urlsafe(18), csrf=secrets.token_urlsafe(32), lang=lang)


class SessionStore:
    """Encodes sessions into cookie values and back; remembers the signed-out ones."""

    def __init__(self, key_path: Path, lifetime_s: float) -> None:
        self.fernet = Fernet(_load_key(key_path))
        self.lifetime = lifetime_s
        self._revoked: dict[str, float] = {}

    def encode(self, session: Session) -> str:
        return self.fernet.encrypt(session.to_json()).decode()

    def decode(self, value: str | None) -> Session | None:
        if not value or len(value) > 4096:
            return None
        try:
            raw = json.loads(self.fernet.decrypt(value.encode(), ttl=int(self.lifetime)))
            session = Session(sid=str(raw["sid"]), csrf=str(raw["csrf"]), user=raw.get("user"),
                              lang=str(raw.get("lang") or "vi"), since=float(raw.get("since") or 0))
        except (InvalidToken, ValueError, KeyError, TypeError):
            return None
        if session.sid in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        now = time.time()
        self._revoked = {sid: t for sid, t in self._revoked.items() if t > now}
        self._revoked[session.sid] = now + self.lifetime


def csrf_ok(session: Session | None, token: str | None) -> bool:
    return bool(session is not None and token and hmac.compare_digest(session.csrf.encode(), token.encode()))


def check_password(config: Config, name: str, password: str) -> UserConfig | None:
    """The user whose name and password match, compared in constant time (a digest of each side,
    so neither the length nor the first differing byte shows in the time taken); an unknown name
    costs the same comparison."""
    account = next((u for u in config.users if u.name == name), None)
    stored = account.password.get_secret_value() if account is not None else secrets.token_hex(16)
    same = hmac.compare_digest(hashlib.sha256(stored.encode("utf-8")).digest(),
                               hashlib.sha256(password.encode("utf-8")).digest())
    return account if same and account is not None else None


class Throttle:
    """At most ``limit`` failed sign-ins per user name and per address within ``window`` seconds;
    past that, refused (without checking the password) until the oldest failure ages out."""

    def __init__(self, limit: int = 5, window: float = 300.0, clock: Any = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str) -> deque[float]:
        now = self.clock()
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window:
            q.popleft()
        return q

    def wait(self, *keys: str) -> float:
        """Seconds until these keys may try again (0: now)."""
        waits = [0.0]
        for key in keys:
            q = self._recent(key)
            if len(q) >= self.limit:
                waits.append(q[-self.limit] + self.window - self.clock())
        return max(waits)

    def failed(self, *keys: str) -> None:
        now = self.clock()
        for key in keys:
            self._recent(key).append(now)
        if len(self._failures) > 10000:  # a scan of many names or addresses: keep memory bounded
            for key in [k for k, q in self._failures.items() if not q or q[-1] <= now - self.window]:
                del self._failures[key]

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
