"""The device-class contracts of hub.api as pure functions: the light's mode/hold/reason decision
and the UPS's status derivation (the whole-hub behaviour is in test_lighting, test_ups_modbus,
test_rules and test_dropin_examples)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest

from hub.api import Command
from hub.api.lights import Hold, LightCommand, decide, hardware_hold
from hub.api.ups import UpsReading, derive_status
from hub.i18n import use_language

NOW = datetime(2025, 6, 21, 3, 0, tzinfo=UTC)
ICT = timezone(timedelta(hours=7))


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    """The reasons below are checked in English (Vietnamese and the codes: test_light_reason_codes...)."""
    with use_language("en"):
        yield


def _cmd(payload: dict, *, user: str | None = None, source: str = "mqtt", reason: str | None = None) -> Command:
    return Command(payload=LightCommand.model_validate(payload), source=source, user=user,
                   reason=reason)


def _dusk(when: datetime) -> datetime:
    return when.replace(hour=11, minute=20)


def test_officer_hold_with_and_without_seconds() -> None:
    h, save = decide(Hold(), _cmd({"state": "OFF", "hold": 3600}, user="an"), target=False, actual=False, now=NOW,
                     tz=ICT, next_transition=_dusk)
    assert (h.mode, h.until, save) == ("manual", NOW + timedelta(hours=1), True)
    assert h.reason == "switched OFF by officer an (manual, holds until 11:00)"
    h, _ = decide(Hold(), _cmd({"state": "ON"}, user="an"), target=True, actual=True, now=NOW, tz=ICT,
                  next_transition=_dusk)
    assert h.until == _dusk(NOW) and h.reason.endswith("holds until 18:20)")
    h, _ = decide(Hold(), _cmd({"state": "ON"}, user="an"), target=True, actual=True, now=NOW, tz=ICT,
                  next_transition=None)
    assert h.until is None and "holds until released" in h.reason
    h, _ = decide(Hold(), _cmd({"state": "ON"}, user="an"), target=True, actual=False, now=NOW, tz=ICT,
                  next_transition=None)
    assert h.reason.endswith("; relay did not follow (ON requested)")


def test_release_and_rules() -> None:
    held = Hold("manual", NOW + timedelta(hours=1), "switched OFF by officer an")
    h, save = decide(held, _cmd({"mode": "auto"}, user="binh"), target=None, actual=False, now=NOW, tz=ICT,
                     next_transition=_dusk)
    assert (h.mode, h.until, h.reason, save) == ("auto", None, "released to automatic by binh", True)
    rule = _cmd({"state": "ON"}, source="rule:night_light", reason="night at a black spot")
    h, save = decide(Hold(), rule, target=True, actual=True, now=NOW, tz=ICT, next_transition=_dusk)
    assert (h.mode, h.reason, save) == ("auto", "night at a black spot", False)
    h, _ = decide(Hold(), _cmd({"state": "ON"}, source="rule:night_light"), target=True, actual=False, now=NOW,
                  tz=ICT, next_transition=_dusk)
    assert h.reason == "switched OFF by rule night_light; relay did not follow (ON requested)"
    # a rule's command never touches a person's hold
    h, _ = decide(held, rule, target=True, actual=True, now=NOW, tz=ICT, next_transition=_dusk)
    assert (h.mode, h.until) == ("manual", held.until)


def test_light_reason_codes_and_the_vietnamese_sentences() -> None:
    """Each decision carries a stable ``reason_code``; the sentence is in the current language."""
    with use_language("vi"):
        h, _ = decide(Hold(), _cmd({"state": "OFF", "hold": 3600}, user="an"), target=False, actual=False,
                      now=NOW, tz=ICT, next_transition=_dusk)
        assert (h.code, h.reason) == ("manual_officer", "cán bộ an tắt đèn (thủ công, giữ đến 11:00)")
        h, _ = decide(Hold(), _cmd({"state": "ON"}), target=True, actual=True, now=NOW, tz=ICT,
                      next_transition=None)
        assert (h.code, h.reason) == ("manual_mqtt", "bật đèn qua mqtt (thủ công, giữ đến khi trả về tự động)")
        h, _ = decide(h, _cmd({"mode": "auto"}, user="binh"), target=None, actual=True, now=NOW, tz=ICT,
                      next_transition=None)
        assert (h.code, h.reason) == ("released", "binh trả đèn về tự động")
        rule = _cmd({"state": "ON"}, source="rule:night_light")
        h, _ = decide(h, rule, target=True, actual=False, now=NOW, tz=ICT, next_transition=None)
        assert (h.code, h.reason) == ("relay_mismatch", "tắt đèn theo quy tắc night_light; rơ-le không chuyển "
                                                        "theo (yêu cầu BẬT)")
    coded = Command(payload=LightCommand.model_validate({"state": "ON"}), source="rule:night_light",
                    reason="night at a black spot", reason_code="night_rule_dark")
    h, _ = decide(Hold(), coded, target=True, actual=True, now=NOW, tz=ICT, next_transition=None)
    assert (h.code, h.reason) == ("night_rule_dark", "night at a black spot")
    assert Hold().code == "automatic"


def test_hardware_hold_only_for_a_persons_timed_hold() -> None:
    assert hardware_hold(_cmd({"state": "ON", "hold": 60}, user="an")) == 60
    assert hardware_hold(_cmd({"state": "ON"}, user="an")) is None
    assert hardware_hold(_cmd({"state": "ON", "hold": 60}, source="rule:x")) is None


@pytest.mark.parametrize(("tokens", "alarms", "values", "kw", "status", "low"), [
    (["OL", "CHRG"], [], {}, {}, "OL CHRG", False),
    (["OB", "DISCHRG", "LB"], [], {"battery_charge": 60}, {}, "OB DISCHRG LB", True),
    # ignorelb: the UPS's LB is replaced by the thresholds, compared as whole numbers, on line too
    (["OB", "DISCHRG", "LB"], [], {"battery_charge": 60}, {"low_battery_charge": 50}, "OB DISCHRG", False),
    (["OL"], [], {"battery_charge": 49.9}, {"low_battery_charge": 50}, "OL LB", True),
    (["OB"], [], {"battery_runtime": 299}, {"low_battery_runtime": 300}, "OB LB", True),
    (["OB", "LB"], [], {"battery_charge": 10}, {"low_battery_charge": 0}, "OB LB", True),  # 0 = off
    # ALARM first, once, while an alarm is present
    (["OL"], ["Replace battery!"], {}, {}, "ALARM OL", False),
    ([], [], {}, {}, None, False),
])
def test_ups_status(tokens: list[str], alarms: list[str], values: dict, kw: dict, status: str | None,
                    low: bool) -> None:
    st = derive_status(UpsReading(tokens, alarms, values), **kw)
    assert st["status"] == status and st["low_battery"] is low
    assert st["on_battery"] is (True if "OB" in tokens else False if "OL" in tokens else None)
    assert st["alarm"] == (" ".join(alarms) or None)


def test_ups_replace_battery_only_when_reported() -> None:
    assert derive_status(UpsReading(["OL", "RB"]))["replace_battery"] is True
    assert derive_status(UpsReading(["OL"]), reports_rb=False)["replace_battery"] is None
