"""The order a run hands its cases to the workers: the longest expected first, when the grid's costs are measured.

pytest-xdist hands cases out in collection order, and a case whose agent runs for half an hour, handed out
last, is the run's tail while every other worker idles. Scheduling the longest jobs first (LPT, Graham 1969)
bounds that tail. With config/case_costs.yaml (`python -m harness costs RUN --write`), a case's expected
seconds are those --shard balances on (harness.run.shard.case_cost_s: the model's agent seconds scaled by
the instance's factor, plus the instance's evaluation); the cases are sorted by them, longest first, grid
order breaking ties, and xdist is told to hand out one case at a time (`--maxschedchunk 1`, unless given):
its default hands each worker a chunk of consecutive cases at the start (a quarter of its share), which
with a sorted grid would give one worker all the longest. Even one at a time, xdist starts each of W
workers with two consecutive cases (a worker runs a case only once it knows the next), so the first 2W
sorted cases are laid out in pairs, the k-th longest with the (2W-1-k)-th, as LPT would have handed them.
Without the table the grid order stays. Every process computes the same order from the same table and
worker count, as xdist requires (each worker collects). benchmarks/dispatch.py measures the orders on
xdist's own scheduler.
"""

from __future__ import annotations

from typing import TypeVar

from harness.config import HarnessConfig
from harness.run.grid import Case
from harness.run.shard import case_cost_s, costs_path, load_case_costs


def dispatch_ranks(
    cfg: HarnessConfig, cases: list[Case], *, backend: str, active_grids: frozenset[str]
) -> dict[str, int] | None:
    """case_id -> position in the dispatch order (0 first), or None: no cost table, the grid order stays."""
    path = costs_path(cfg)
    if not path.is_file():
        return None
    costs = load_case_costs(path)
    seconds = [case_cost_s(cfg, c, backend=backend, active_grids=active_grids, costs=costs) for c in cases]
    order = sorted(range(len(cases)), key=lambda k: (-seconds[k], k))
    return {cases[k].case_id: rank for rank, k in enumerate(order)}


T = TypeVar("T")


def paired_for_xdist(ordered: list[T], workers: int) -> list[T]:
    """`ordered` (longest first) laid out for xdist's start: worker k's two first cases are the k-th longest
    and the (2W-1-k)-th (positions 2k and 2k+1); the rest stay in order. Unchanged for one worker or when
    there are fewer than 2W cases (xdist then deals them round-robin, which pairs the k-th with the W+k-th)."""
    if workers < 2 or len(ordered) < 2 * workers:
        return list(ordered)
    first = ordered[: 2 * workers]
    paired = [case for k in range(workers) for case in (first[k], first[2 * workers - 1 - k])]
    return paired + ordered[2 * workers :]
