"""The hub's core, in parts (docs/design.md, "A layout to grow into"):

* :mod:`hub.core.runner`: :class:`DeviceRunner` (one device behind its error boundary), the
  driver's context, :class:`Backoff`;
* :mod:`hub.core.state`: :class:`StateStore` (states, availability, sites; listeners);
* :mod:`hub.core.commands`: :class:`CommandService` (roles, validation, audit);
* :mod:`hub.core.storage`: :class:`Storage` (registry and history);
* :mod:`hub.core.view`: :class:`HubView` and :class:`RequestRegistry`, what the MQTT bridge sees;
* :mod:`hub.core.hub`: :class:`Hub`, which assembles them.
"""

from hub.core.commands import CommandService, audit_form
from hub.core.hub import Hub, RuleContextImpl
from hub.core.runner import Backoff, DeviceContextImpl, DeviceRunner, cancel_and_wait, describe_error
from hub.core.state import Listener, StateStore
from hub.core.storage import Storage
from hub.core.view import HubView, RequestHandler, RequestRegistry

__all__ = [
    "Backoff", "CommandService", "DeviceContextImpl", "DeviceRunner", "Hub", "HubView", "Listener",
    "RequestHandler", "RequestRegistry", "RuleContextImpl", "StateStore", "Storage", "audit_form",
    "cancel_and_wait", "describe_error",
]
