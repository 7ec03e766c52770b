"""The discrete-event engine: time, an event queue, nothing of IPVS or Kubernetes."""

from ipvslab.engine.loop import Engine, Event

__all__ = ["Engine", "Event"]
