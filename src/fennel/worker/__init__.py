"""The worker: ``fennel worker --app mod:app`` runs :class:`Worker`."""

from fennel.worker.supervisor import Worker

__all__ = ["Worker"]
