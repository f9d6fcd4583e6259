"""Built-in plugin: the ``image_health`` rule (see docs/image_health.md)."""

from __future__ import annotations

from hub.api import CommandSpec, RuleSpec
from hub.hookspecs import hookimpl

from .monitor import HealthOptions
from .rule import ImageHealthRule


@hookimpl
def anninh_rules() -> list[RuleSpec]:
    return [RuleSpec(name="image_health", factory=ImageHealthRule, options_model=HealthOptions,
                     default_enabled=True,
                     description="checks camera pictures (dark, blurry, frozen, covered, moved, no signal) "
                                 "every health_interval seconds")]


@hookimpl
def anninh_commands() -> list[CommandSpec]:
    from .cli import REFERENCE

    return [REFERENCE]
