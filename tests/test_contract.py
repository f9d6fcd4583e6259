"""Every event a vendor driver can emit is declared in hub.api.contract, with one shape for all
vendors (the drivers' own tests check the fields of the events they emit through the simulators)."""

from __future__ import annotations

from hub.api import cameras, contract
from plugins.dahua import driver as dahua
from plugins.generic_onvif import events as onvif
from plugins.hikvision import driver as hikvision


def test_every_vendor_event_is_declared() -> None:
    names = {*hikvision.EVENT_MAP.values(), *hikvision.DEVICE_EVENTS.values(), *dahua.CODE_MAP.values(),
             *dahua.DEVICE_CODES.values(), *onvif.KINDS}
    assert {"motion", "video_loss", "tamper", "disk_full"} <= names
    assert sorted(n for n in names if n not in contract.EVENTS) == []


def test_flag_events_have_one_shape() -> None:
    """Every flag (a camera/recorder state field that is also an event) says ``active``, and ends on
    a timeout the same way in every driver."""
    for flag in [*cameras.FLAGS, *cameras.MORE_FLAGS]:
        spec = contract.EVENTS[flag]
        assert list(spec.required) == ["active"] and "ended" in spec.optional and "channel" in spec.optional
        contract.check_event(flag, {"channel": 1, "active": False, "ended": "timeout"})


def test_topics_are_unique_and_match_their_templates() -> None:
    patterns = [t.pattern for t in contract.TOPICS]
    assert len(patterns) == len(set(patterns))
    for template in (contract.BRIDGE_STATE, contract.BRIDGE_INFO, contract.BRIDGE_EVENT, contract.DEVICE_STATE,
                     contract.DEVICE_AVAILABILITY, contract.DEVICE_SET, contract.SITE_STATE, contract.SITE_EVENT):
        pattern = template.format(base="<base>", device="<device>", site="<site>")
        assert pattern in patterns, pattern
