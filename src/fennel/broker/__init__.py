"""The Redis broker: the only part of Fennel that talks to Redis."""

from fennel.broker.redis import Broker, DeliveredEntry, QueueStats

__all__ = ["Broker", "DeliveredEntry", "QueueStats"]
