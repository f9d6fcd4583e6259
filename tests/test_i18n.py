"""The translation mechanism and the completeness of the catalogs."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from hub import i18n
from hub.i18n import format_duration, format_percent, tr, use_language

ROOT = Path(__file__).resolve().parent.parent


def test_every_marked_text_has_a_vietnamese_translation() -> None:
    # scripts/i18n.py extracts every text marked with _, N_, tr, ngettext from the code and templates
    # (Babel) and compares it with the catalogs: a text a person reads without a translation fails here.
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "i18n.py"), "check"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_vietnamese_is_the_default_and_english_the_switch() -> None:
    i18n.set_language(None)
    assert i18n.language() == "vi"
    assert format_duration(3 * 3600 + 12 * 60) == "3 giờ 12 phút"
    assert format_percent(1 - (3 * 3600 + 12 * 60) / (30 * 86400), 3) == "99,556 %"
    with use_language("en"):
        assert format_duration(3 * 3600 + 12 * 60) == "3 h 12 min"
        assert format_percent(0.99556, 3) == "99.556%"
    assert i18n.language() == "vi"


def test_language_follows_the_task_not_the_process() -> None:
    async def speak(lang: str) -> str:
        with use_language(lang):
            await asyncio.sleep(0)
            return format_duration(90 * 60)

    async def both() -> list[str]:
        return list(await asyncio.gather(speak("en"), speak("vi"), speak("en")))

    assert asyncio.run(both()) == ["1 h 30 min", "1 giờ 30 phút", "1 h 30 min"]


def test_placeholders_are_filled_after_translation_and_missing_ones_stay_visible() -> None:
    with use_language("vi"):
        assert tr("{n} min", n=5) == "5 phút"
        assert tr("{n} min") == "{n} phút"


@pytest.mark.parametrize("code, want", [("vi_VN", "vi"), ("en-GB", "en"), ("EN", "en"), (None, "vi")])
def test_language_codes_are_normalised(code: str | None, want: str) -> None:
    assert i18n.normalize(code) == want


def test_an_unknown_language_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported language 'fr'"):
        i18n.normalize("fr")
