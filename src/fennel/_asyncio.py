"""Small asyncio helpers shared by the client and the worker."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from fennel._log import get_logger

log = get_logger("fennel")


def cancel_requested() -> bool:
    """Whether the current task was asked to cancel, even if a library swallowed the
    CancelledError (asyncio.wait_for before Python 3.12 can lose one)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    return bool(cancelling()) if cancelling is not None else False


async def stop_tasks(tasks: Sequence[asyncio.Task[Any]], timeout: float = 5.0) -> None:
    """Cancel ``tasks`` and wait at most ``timeout`` for them; shutdown never hangs on one."""
    for t in tasks:
        t.cancel()
    if not tasks:
        return
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for t in pending:
        log.warning("fennel.task_did_not_stop", task=t.get_name())


