"""The simulators' routing tables name methods that exist: a misspelt entry would otherwise show only
when a client first asks for that path or action."""

from __future__ import annotations

from plugins.dahua.simulator import DahuaSimulator
from plugins.generic_onvif.simulator import SOAP_ROUTES, OnvifSimulator
from plugins.hikvision.simulator import HikvisionSimulator


def test_every_route_names_a_method() -> None:
    names = {
        OnvifSimulator: [m for actions in SOAP_ROUTES.values() for m in actions.values()],
        HikvisionSimulator: [*HikvisionSimulator.XML_ROUTES.values(), *HikvisionSimulator.ROUTES.values(),
                             *(m for _, _, m in HikvisionSimulator.PATTERNS)],
        DahuaSimulator: list(DahuaSimulator.ROUTES.values()),
    }
    missing = [f"{cls.__name__}.{m}" for cls, methods in names.items() for m in methods
               if not callable(getattr(cls, m, None))]
    assert all(names.values()) and missing == []


def test_hikvision_exact_routes_are_lower_case_and_disjoint() -> None:
    """Paths are matched in lower case, and a path answered as a document is not also a request route."""
    exact = [*HikvisionSimulator.XML_ROUTES, *HikvisionSimulator.ROUTES]
    assert all(p == p.lower() for p in exact)
    assert all(p == p.lower() and s == s.lower() for p, s, _ in HikvisionSimulator.PATTERNS)
    assert not set(HikvisionSimulator.XML_ROUTES) & set(HikvisionSimulator.ROUTES)
