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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


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


_last_reading = threading.local()


def _cpu_percent(window_s: float = 0.2) -> float:
    """The machine's CPU use over about the last `window_s`, all threads (psutil's cpu_times, as its cpu_percent).

    A waiter asks at every poll (0.05 s): when this thread asked under a second ago, the reading spans the
    time since then (at least 0.05 s), so a free slot is taken without a blocking sample (each slot beyond
    the first used to wait for a 0.2 s one); otherwise it samples `window_s`."""
    import psutil

    last = getattr(_last_reading, "value", None)
    now = time.monotonic()
    if last is None or now - last[0] > 1.0:  # no recent reading: sample a window now
        last = (now, psutil.cpu_times())
        time.sleep(window_s)
    elif now - last[0] < 0.05:  # too short a window to say anything
        time.sleep(0.05 - (now - last[0]))
    reading = (time.monotonic(), psutil.cpu_times())
    _last_reading.value = reading
    total = _total(reading[1]) - _total(last[1])
    busy = total - (_idle(reading[1]) - _idle(last[1]))
    return max(0.0, min(100.0, 100.0 * busy / total)) if total > 0 else 0.0


def _total(times) -> float:
    """All CPU seconds (guest time is counted in user and nice already, as psutil does)."""
    return sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _idle(times) -> float:
    return times.idle + getattr(times, "iowait", 0.0)
