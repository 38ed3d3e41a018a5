"""Redis key names of one app.

All keys share the hash tag ``{<app name>}`` so that an app lives in one Redis Cluster slot.
"""

from __future__ import annotations

import dataclasses

__all__ = ["Keys"]

GROUP = "fennel"


@dataclasses.dataclass(frozen=True)
class Keys:
    app: str

    @property
    def prefix(self) -> str:
        return f"fennel:{{{self.app}}}:"

    @property
    def queue(self) -> str:
        """Stream of jobs ready to run, read by the consumer group ``fennel``."""
        return self.prefix + "queue"

    @property
    def schedule(self) -> str:
        """Sorted set of job ids waiting for a retry or a delayed start; score = due time."""
        return self.prefix + "schedule"

    @property
    def dead(self) -> str:
        """Stream of dead jobs: the DLQ."""
        return self.prefix + "dead"

    @property
    def workers(self) -> str:
        """Sorted set of live worker names; score = last heartbeat (Redis time)."""
        return self.prefix + "workers"

    @property
    def worker_info(self) -> str:
        """Hash: worker name -> JSON of its host, pid, pool, in flight and recent throughput."""
        return self.prefix + "workers:info"

    def job(self, job_id: str) -> str:
        """Hash: status, result or error, envelope (while retrying), timestamps."""
        return self.prefix + "job:" + job_id

    def reply_channel(self, client_id: str) -> str:
        """Pub/sub channel on which one producer process hears of its jobs' completions."""
        return self.prefix + "done:" + client_id
