"""Every sentence a person reads, in the hub's language (Vietnamese by default) or English.

Text is marked in the code the gettext way and translated from the catalogs under
``hub/i18n/locale/<lang>/LC_MESSAGES/<domain>.po``:

* ``_("Power lost at {site}")`` translates now, in the language of the current context;
* ``N_("...")`` only marks a text (a table of templates at module level) for the extractor; translate
  it later with ``_(template)``;
* ``ngettext(singular, plural, n)`` for counts.

Placeholders are ``str.format`` names (``{site}``), never ``%s``: a translation may reorder them. Machine
codes (``type``, ``cause``, ``reason_code``) are never translated; the sentence goes beside them.

The catalogs are split in domains by area (``core``, ``cli``, ``export``, ``ops``, ``web``; see
``DOMAINS``) so that work on one area does not touch the others' files; at run time they are merged into
one translation per language, so code never names a domain. ``python scripts/i18n.py update`` extracts
the marked texts (Babel) and merges them into the catalogs; ``python scripts/i18n.py check`` (and
tests/test_i18n.py) fails when a marked text has no Vietnamese translation.

The language of a context: ``set_language()`` sets the process default (``hub.language`` from the
config, or ``--lang``); ``use_language()`` overrides it for the current task (a web request in the
visitor's language) through a context variable, so concurrent requests do not mix languages.
"""
from __future__ import annotations

import contextlib
import contextvars
import gettext
import io
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LOCALE_DIR = Path(__file__).parent / "locale"

#: catalog domain -> the source paths (relative to the repository root) whose marked texts it holds
DOMAINS: dict[str, tuple[str, ...]] = {
    "core": ("hub/api", "hub/core", "hub/bridge.py", "hub/config.py", "hub/app.py", "hub/mqtt.py",
             "hub/broker.py", "hub/storage.py", "hub/security.py", "hub/plugins.py", "hub/camera",
             "hub/modbus.py", "hub/netprobe.py", "hub/process.py", "hub/sun.py", "hub/clock.py",
             "hub/i18n", "plugins"),
    "cli": ("hub/cli", "hub/demo.py"),
    "export": ("hub/export",),
    "ops": ("hub/ops",),
    "web": ("hub/web",),
}

_process_language = DEFAULT_LANGUAGE
_context_language: contextvars.ContextVar[str | None] = contextvars.ContextVar("anninh_language", default=None)


def normalize(lang: str | None) -> str:
    """``"vi"``, ``"vi_VN"``, ``"en-GB"`` … -> one of LANGUAGES (ValueError for anything else)."""
    if not lang:
        return DEFAULT_LANGUAGE
    base = lang.replace("-", "_").split("_")[0].lower()
    if base not in LANGUAGES:
        raise ValueError(f"unsupported language {lang!r}: use one of {', '.join(LANGUAGES)}")
    return base


def set_language(lang: str | None) -> str:
    """Set the process's default language; returns the normalised code."""
    global _process_language
    _process_language = normalize(lang)
    return _process_language


def language() -> str:
    """The language of the current context."""
    return _context_language.get() or _process_language


@contextlib.contextmanager
def use_language(lang: str | None) -> Iterator[str]:
    """Translate in ``lang`` inside the block (this task and the tasks it starts), then restore."""
    code = normalize(lang) if lang else language()
    token = _context_language.set(code)
    try:
        yield code
    finally:
        _context_language.reset(token)


def _load_po(path: Path) -> gettext.GNUTranslations:
    # Babel reads the .po (the file people edit and review) and writes the compiled form in memory:
    # no .mo files to keep in step with the .po in the repository.
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with path.open("rb") as f:
        catalog = read_po(f, ignore_obsolete=True)
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """All domains of one language merged (first domain wins on a duplicated text)."""
    code = normalize(lang)
    merged: gettext.NullTranslations = gettext.NullTranslations()
    first: gettext.NullTranslations | None = None
    for domain in DOMAINS:
        path = LOCALE_DIR / code / "LC_MESSAGES" / f"{domain}.po"
        if not path.exists():
            continue
        t = _load_po(path)
        if first is None:
            first = t
        else:
            first.add_fallback(t)
    if first is not None:
        first.add_fallback(merged)
        return first
    return merged


def _(message: str) -> str:
    """Translate ``message`` into the current context's language."""
    if not message:
        return message
    return translations(language()).gettext(message)


def gettext_(message: str) -> str:
    """Alias of ``_`` for code that already uses ``_`` as a throwaway name."""
    return _(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return translations(language()).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Mark ``message`` for the catalogs without translating it (translate later with ``_``)."""
    return message


def tr(template: str, **params: Any) -> str:
    """Translate ``template`` then fill its ``{named}`` placeholders (missing ones stay visible)."""
    text = _(template)
    try:
        return text.format(**params)
    except (KeyError, IndexError, ValueError):
        return text.format_map(_Missing(params))


class _Missing(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


# --- numbers, dates and durations the way the language writes them (Babel's CLDR data) --------------

def format_number(value: float | int, digits: int | None = None) -> str:
    from babel.numbers import format_decimal

    pattern = None if digits is None else ("#,##0." + "0" * digits if digits else "#,##0")
    return format_decimal(value, format=pattern, locale=language())


def format_percent(fraction: float, digits: int = 1) -> str:
    """0.99556 -> "99,556 %" (vi, digits=3) / "99.556%" (en)."""
    from babel.numbers import format_percent as fp

    pattern = "#,##0." + "0" * digits + " %" if digits else "#,##0 %"
    text = fp(fraction, format=pattern, locale=language())
    return text if language() == "vi" else text.replace(" %", "%")


def format_datetime(value: datetime, fmt: str = "short") -> str:
    from babel.dates import format_datetime as fd

    return fd(value, format=fmt, locale=language())


def format_date(value: date, fmt: str = "medium") -> str:
    from babel.dates import format_date as fd

    return fd(value, format=fmt, locale=language())


def format_time(value: datetime, fmt: str = "short") -> str:
    from babel.dates import format_time as ft

    return ft(value, format=fmt, locale=language())


def format_duration(seconds: float) -> str:
    """A duration as people say it: "3 giờ 12 phút" / "3 h 12 min"; seconds only under a minute."""
    total = round(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts: list[str] = []
    if days:
        parts.append(tr("{n} d", n=days))
    if hours:
        parts.append(tr("{n} h", n=hours))
    if minutes:
        parts.append(tr("{n} min", n=minutes))
    if not parts:
        parts.append(tr("{n} s", n=secs))
    return " ".join(parts)


def format_timedelta(value: timedelta) -> str:
    return format_duration(value.total_seconds())


__all__ = [
    "DEFAULT_LANGUAGE",
    "DOMAINS",
    "LANGUAGES",
    "N_",
    "_",
    "format_date",
    "format_datetime",
    "format_duration",
    "format_number",
    "format_percent",
    "format_time",
    "format_timedelta",
    "gettext_",
    "language",
    "ngettext",
    "normalize",
    "set_language",
    "tr",
    "translations",
    "use_language",
]
