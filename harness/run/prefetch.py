"""The next case's agent, started while this case is graded: a worker is never idle while a patch is evaluated.

pytest runs one test at a time per process, and a case's test ends with its verdict, so a worker that
graded its patch in its own turn would leave its agent slot empty for the whole evaluation (and its wait
for an evaluation slot). pytest hands each test protocol its `nextitem` (xdist too: a worker runs an item
only once it knows the next one, or is told to stop), so as soon as a case's agent is done the worker
starts the next case's agent in a thread, then grades. The next case's test picks up that agent's result.

At most one agent and one grading run per worker; the running marker is set when the agent starts, so a
process killed meanwhile leaves the case to `--resume`. A prefetched agent whose test never runs (the
session stopped early) dies with the process (a daemon thread), and the next `--resume` runs the case.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import TYPE_CHECKING

from harness.results.records import mark_running

# harness.run.case is imported when an agent starts, not at collection: harness.run.lifecycle imports this.
if TYPE_CHECKING:
    from harness.run.case import AgentPhase
    from harness.run.context import RunContext
    from harness.run.grid import Case


class AgentPrefetch:
    """One per process: the agents started ahead of their test, by case id."""

    def __init__(self) -> None:
        self._started: dict[str, Future[AgentPhase]] = {}

    def start(self, ctx: RunContext, case: Case) -> None:
        """Start `case`'s agent in a daemon thread, unless it is started or finished already."""
        from harness.run.case import previous_record, run_agent

        if case.case_id in self._started or previous_record(ctx.paths, case.case_id) is not None:
            return
        mark_running(ctx.paths, case.case_id)
        future: Future[AgentPhase] = Future()

        def run() -> None:
            try:
                ctx.ensure_images_for(case)
                future.set_result(run_agent(ctx, case))
            except (
                BaseException
            ) as e:  # raised in `case`'s own test, where it is reported (not in this one's)
                future.set_exception(e)

        self._started[case.case_id] = future
        threading.Thread(target=run, name=f"harness-agent-{case.case_id}", daemon=True).start()

    def take(self, case_id: str) -> Future[AgentPhase] | None:
        """The agent started for `case_id`, if any (each is taken once)."""
        return self._started.pop(case_id, None)
