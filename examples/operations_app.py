"""Operations features in one runnable example: middleware, callbacks, a chain, probes,
metrics and tracing.

Run it (needs a Redis; `fennel demo` style private servers work too):

    export FENNEL_REDIS_URL=redis://127.0.0.1:6379/0
    fennel worker --app examples.operations_app:app --health-port 9100 &
    python -m examples.operations_app
    curl -s localhost:9100/readyz; curl -s localhost:9100/metrics | grep fennel_jobs
    fennel info --app examples.operations_app:app
"""

from __future__ import annotations

import time
from typing import Any

from fennel import App, Job, Middleware, chain
from fennel.tracing import TracingMiddleware


class SlowJobAlert(Middleware):
    """Logs a warning for any job slower than a threshold (a stand-in for paging)."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def on_success(self, app: App[Any], job: Job, result: Any, duration: float) -> None:
        if duration > self.threshold:
            print(f"slow job: {job.task} took {duration:.2f}s")

    async def on_dead(self, app: App[Any], job: Job, reason: str) -> None:
        print(f"job {job.id} of {job.task} is dead: {reason}")


app = App(name="operations-example", default_retries=1,
          middleware=[TracingMiddleware(), SlowJobAlert(threshold=0.5)])


@app.task
def fetch(url: str) -> int:
    time.sleep(0.1)
    return len(url)


@app.task
def double(n: int) -> int:
    return n * 2


@app.task
def report(label: str, value: Any) -> str:
    line = f"{label}: {value}"
    print(line)
    return line


@app.task(retries=0)
def flaky(n: int) -> int:
    raise RuntimeError(f"no luck with {n}")


@app.task
def alert(channel: str, error: dict[str, Any]) -> str:
    return f"#{channel}: {error['type']} {error['args']}"


def main() -> None:
    # A callback: report() gets fetch()'s result once it is recorded.
    x = fetch.options(on_success=report.s("length")).delay("https://example.com")
    print("fetch ->", x.get(timeout=30), "| callback ->", x.followup().get(timeout=30))

    # A chain: fetch -> double -> report.
    c = chain(fetch.s("https://example.org/a"), double, report.s("doubled")).delay()
    print("chain last step ->", c.followup().followup().get(timeout=30))

    # A failure callback, run once the job is dead.
    f = flaky.options(on_failure=alert.s("ops")).delay(7)
    print("failure callback ->", f.followup(failed=True).get(timeout=30))
    app.close()


if __name__ == "__main__":
    main()
