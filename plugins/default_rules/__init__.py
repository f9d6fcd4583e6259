"""Built-in plugin ``default_rules``: the rules docs/design.md says run by default."""

from __future__ import annotations

from hub.api import RuleSpec
from hub.hookspecs import hookimpl

from .night_light import NightLightOptions, NightLightRule
from .offline_cause import OfflineCauseOptions, OfflineCauseRule
from .power import PowerOptions, PowerRule


@hookimpl
def anninh_rules() -> list[RuleSpec]:
    return [
        RuleSpec(name="night_light", factory=NightLightRule, options_model=NightLightOptions,
                 description="black-spot lights ON while dark (sun or camera darkness), with hysteresis"),
        RuleSpec(name="host_power", factory=PowerRule, options_model=PowerOptions,
                 description="site power ok/lost/unknown from UPS units and meters; power_lost/restored"),
        RuleSpec(name="offline_cause", factory=OfflineCauseRule, options_model=OfflineCauseOptions,
                 description="names why a camera or recorder went offline"),
    ]
