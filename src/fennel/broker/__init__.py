"""The Redis broker: the only part of Fennel that talks to Redis."""

from fennel.broker.redis import Broker, DeliveredEntry

__all__ = ["Broker", "DeliveredEntry"]
