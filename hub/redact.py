"""Keep secrets out of everything the hub writes: logs, MQTT payloads, events, history.

The hub registers every password from the config; :func:`redact` replaces them (and their
URL-encoded forms) in any text, and :class:`RedactingFilter` does so in every log record before
any handler formats it. Drivers should still never put credentials into messages: this is the
net under the rope.
"""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote

MASK = "***"
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None


def stored_forms(value: str) -> set[str]:
    """Every form in which the hub may write ``value``: as is, URL-encoded, JSON-escaped (a
    password with ``"`` or ``\\`` in a JSON payload or history row), ASCII-escaped JSON, and
    Python's ``repr`` (error messages quote values with ``!r``)."""
    forms = {value, quote(value, safe=""), json.dumps(value, ensure_ascii=False)[1:-1],
             json.dumps(value)[1:-1], repr(value)[1:-1]}
    return {f for f in forms if f}


def register_secrets(values: list[str]) -> None:
    global _pattern
    for v in values:
        if v and len(v) >= 3:
            _secrets.update(stored_forms(v))
    if _secrets:  # one alternation, longest first: one scan per text on the hot path
        _pattern = re.compile("|".join(re.escape(s) for s in sorted(_secrets, key=len, reverse=True)))


def clear_secrets() -> None:
    global _pattern
    _secrets.clear()
    _pattern = None


def redact(text: str) -> str:
    if _pattern is None or not text:
        return text
    return _pattern.sub(MASK, text)


def redact_cut(text: str, limit: int) -> str:
    """Redact, then shorten to ``limit`` characters: cutting first would leave a prefix of a
    secret that exact-match redaction no longer recognises."""
    cleaned = redact(text)
    return cleaned if len(cleaned) <= limit else cleaned[:limit - 1] + "…"


class RedactingFilter(logging.Filter):
    """Formats the message, redacts it, and freezes the result into the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        try:
            message = record.getMessage()
        except Exception:
            return True
        cleaned = redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            formatter = logging.Formatter()
            exc_text = formatter.formatException(record.exc_info)
            record.exc_text = redact(exc_text)
            record.exc_info = None
            cleaned = f"{cleaned}\n{record.exc_text}"
            record.exc_text = None
        record.msg = cleaned
        record.args = None
        return True


def install_log_redaction() -> None:
    """Attach the filter to every handler of the root logger (call after logging is set up)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
