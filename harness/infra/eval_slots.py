"""Evaluation slots shared by every process of a run, handed out first come, first served, with a CPU governor.

A run evaluates at most N patches at once (`evaluation.workers`, `--eval-workers`): N lock files under the run
folder, held with flock while an evaluation runs. Waiters queue in arrival order: each holds a locked ticket file
named by its arrival time, and only the first live ticket may take a slot. Without the queue, whichever waiter
polled first after a release won, and one case's patch could wait behind many later ones (27.8 s where the
evaluations took 3 s, on the pipeline benchmark), keeping its worker's next case waiting too.

With `cpu_target`, slots beyond the first are admitted only while the machine's CPU is under it (the governor):
evaluations are what load the CPU, agents mostly wait on the LLM, so a large -n cannot push the machine over the
target. Slot 0 is always admitted, so evaluations never starve.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def eval_slot(
    slots_dir: Path,
    n_slots: int,
    poll_s: float = 0.05,
    cpu_target: float | None = None,
    cpu_percent: Callable[[], float] | None = None,
) -> Iterator[float]:
    """Hold one of `n_slots` evaluation slots (shared by every process of the run); yields the wait in seconds."""
    slots_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    handles = [open(slots_dir / f"slot-{i}.lock", "a+") for i in range(n_slots)]  # noqa: SIM115
    held = None
    try:
        with _Ticket(slots_dir / "queue") as ticket:
            while held is None:
                if ticket.first():
                    held = _take_a_slot(handles, cpu_target, cpu_percent or _cpu_percent)
                if held is None:
                    if cpu_target is not None and cpu_percent is None:
                        _note_cpu()  # so that the governor reads the CPU without a sample once a slot frees
                    time.sleep(poll_s)
        yield time.monotonic() - start
    finally:
        if held is not None:
            fcntl.flock(held, fcntl.LOCK_UN)
        for handle in handles:
            handle.close()


def _take_a_slot(
    handles: list[IO[str]], cpu_target: float | None, cpu_percent: Callable[[], float]
) -> IO[str] | None:
    for index, handle in enumerate(handles):
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        if index and cpu_target is not None and cpu_percent() >= cpu_target:
            fcntl.flock(handle, fcntl.LOCK_UN)  # the machine is busy: wait for slot 0 or calm
            continue
        return handle
    return None


class _Ticket:
    """This waiter's place in the queue: a file named by its arrival time, locked while it waits. A waiter that
    died left its ticket unlocked: the others skip it and remove it."""

    def __init__(self, folder: Path):
        self.folder = folder
        name = f"{time.time_ns():020d}-{os.getpid()}-{threading.get_ident()}"
        self.path = folder / name

    def __enter__(self) -> _Ticket:
        self.folder.mkdir(exist_ok=True)
        draft = self.folder / f".{self.path.name}"  # locked before it is visible: never taken for a dead one
        self._handle = open(draft, "w")  # noqa: SIM115
        fcntl.flock(self._handle, fcntl.LOCK_EX)
        draft.rename(self.path)
        return self

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
        self._handle.close()

    def first(self) -> bool:
        """No live ticket arrived before this one."""
        for other in sorted(p for p in self.folder.iterdir() if not p.name.startswith(".")):
            if other.name >= self.path.name:
                return True
            if _waiting(other):
                return False
        return True


def _waiting(ticket: Path) -> bool:
    """Its waiter still holds the lock; a ticket whose waiter died is removed."""
    try:
        with open(ticket) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            ticket.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    return False


_readings = threading.local()
"""This thread's recent readings of the machine's CPU counters, (monotonic time, psutil.cpu_times()), oldest first."""


def _note_cpu() -> tuple[float, Any]:
    """Read the CPU counters into this thread's history (the last second of readings) and return the reading."""
    import psutil

    history: deque[tuple[float, Any]] = _readings.__dict__.setdefault("history", deque())
    reading = (time.monotonic(), psutil.cpu_times())
    history.append(reading)
    while reading[0] - history[0][0] > 1.0:
        history.popleft()
    return reading


def _cpu_percent(window_s: float = 0.2) -> float:
    """The machine's CPU use over about the last `window_s`, all threads (psutil's cpu_times, as its cpu_percent).

    A waiter notes the counters at every poll (`eval_slot`), so when a slot beyond the first frees up the reading
    spans the last `window_s` of them and costs no sleep; without recent readings it samples `window_s` (each
    slot beyond the first used to wait for such a 0.2 s sample after it was freed)."""
    latest = _note_cpu()
    history = _readings.history
    base = next((r for r in reversed(history) if latest[0] - r[0] >= window_s), None)
    if base is None:
        base = history[0]
        time.sleep(window_s - (latest[0] - base[0]))
        latest = _note_cpu()
    total = _total(latest[1]) - _total(base[1])
    busy = total - (_idle(latest[1]) - _idle(base[1]))
    return max(0.0, min(100.0, 100.0 * busy / total)) if total > 0 else 0.0


def _total(times) -> float:
    """All CPU seconds (guest time is counted in user and nice already, as psutil does)."""
    return sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _idle(times) -> float:
    return times.idle + getattr(times, "iowait", 0.0)
