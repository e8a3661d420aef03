"""Dispatch order on pytest-xdist's own scheduler: the run's wall time with cases in grid order (xdist's default
chunks) against the harness's order with measured costs (longest expected first, paired for xdist's start,
one case at a time: harness.run.dispatch), simulated on heavy-tailed case times.

The scheduler is xdist's `LoadScheduling` itself, driven by simulated workers that behave as the harness's do:
a worker runs its cases' agents one after another; it starts a case only once it knows the case after it
(xdist's worker runs an item with its next item known; the harness starts the next agent while a case is
graded); each agent is followed by its evaluation, and the case is reported to the scheduler when that ends.
Evaluation slots are not limited here. Agent seconds are lognormal (median 300 s, sigma 1: a few cases run
ten times the median, as SWE-bench agents do), evaluations 20-60 s; the estimates the order uses are each
case's true agent seconds times lognormal noise (sigma 0.5: an earlier run's medians; sigma 1: weak ones).
Reported: the wall over a lower bound, max(sum agent / W, longest case), median and 90th percentile.

    .venv/bin/python benchmarks/dispatch.py            # print the markdown section
    .venv/bin/python benchmarks/dispatch.py --write    # and replace "## Dispatch order" in docs/performance.md

`--measure` runs the real thing instead, on a grid whose cases differ in length: the 3 fixture instances x 6
scripted models, five answering after 2 s per request and the last one (last in grid order) after 8 s; 6
workers, 2 evaluation slots, evaluation cache off. Alternating runs without a cost table (grid order) and
with the table `python -m harness costs` measured from the first of them ("## Dispatch order (measured)").
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
import sys
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from xdist.scheduler.load import LoadScheduling  # noqa: E402

from benchmarks.perfdoc import machine_line, replace_section  # noqa: E402
from harness.run.dispatch import paired_for_xdist  # noqa: E402

GRIDS = ((18, 6), (24, 8), (60, 8), (300, 8), (300, 12))
"""(cases, workers): the pipeline benchmark's shape, small and i3-sized runs, a full Lite split."""


class _Worker:
    """What LoadScheduling talks to (it sends case positions and, at the end, shutdown), and the worker's state:
    the case whose pytest protocol runs, and the agents started."""

    def __init__(self, k: int) -> None:
        self.gateway = types.SimpleNamespace(id=f"gw{k}")
        self.shutting_down = False
        self.queue: list[int] = []
        self.protocol: int | None = None
        self.next_of: dict[int, int | None] = {}
        self.agent_started: set[int] = set()
        self.agent_done: set[int] = set()

    def send_runtest_some(self, indices: list[int]) -> None:
        self.queue.extend(indices)

    def send_runtest_all(self) -> None:  # pragma: no cover - only --dist each uses it
        raise NotImplementedError

    def shutdown(self) -> None:
        self.shutting_down = True


def wall(agent: list[float], evals: list[float], order: list[int], workers: int, chunk: int | None) -> float:
    """Seconds from the start to the last report, cases collected in `order` (indices into agent/evals).

    A worker runs a case's protocol once the previous one ended and it knows the next case (or was told to shut
    down), as xdist's worker does; the case's agent starts then unless it already runs; when it ends, the
    case's evaluation starts and the next case's agent too (the harness's prefetch); the report comes when the
    evaluation ends."""
    sched = LoadScheduling.__new__(LoadScheduling)  # its __init__ reads a pytest config; the state it sets:
    sched.numnodes, sched.node2collection, sched.node2pending = workers, {}, {}
    sched.pending, sched.collection, sched.log, sched.config = [], None, lambda *a, **k: None, None
    sched.maxschedchunk = chunk
    nodes = [_Worker(k) for k in range(workers)]
    names = [str(i) for i in order]
    for node in nodes:
        sched.add_node(node)
        sched.add_node_collection(node, names)
    sched.schedule()
    events: list[tuple[float, int, int, int]] = []  # (time, 0 agent done | 1 evaluated, worker, position)

    def run_agent(k: int, position: int, now: float) -> None:
        nodes[k].agent_started.add(position)
        heapq.heappush(events, (now + agent[order[position]], 0, k, position))

    def graded(k: int, position: int, now: float) -> None:  # the agent ended inside its protocol
        heapq.heappush(events, (now + evals[order[position]], 1, k, position))
        following = nodes[k].next_of[position]
        if following is not None and following not in nodes[k].agent_started:
            run_agent(k, following, now)

    def begin(k: int, now: float) -> None:
        node = nodes[k]
        if node.protocol is None and node.queue and (len(node.queue) >= 2 or node.shutting_down):
            node.protocol = position = node.queue.pop(0)
            node.next_of[position] = node.queue[0] if node.queue else None
            if position in node.agent_done:
                graded(k, position, now)
            elif position not in node.agent_started:
                run_agent(k, position, now)

    for k in range(workers):
        begin(k, 0.0)
    end = 0.0
    while events:
        now, kind, k, position = heapq.heappop(events)
        if kind == 0:
            nodes[k].agent_done.add(position)
            if nodes[k].protocol == position:
                graded(k, position, now)
        else:
            end, nodes[k].protocol = now, None
            sched.mark_test_complete(nodes[k], position, duration=now)
            for j in range(workers):
                begin(j, now)
    return end


def trial(rng: random.Random, n: int, workers: int, noise: float) -> dict[str, float]:
    agent = [300 * rng.lognormvariate(0, 1.0) for _ in range(n)]
    evals = [rng.uniform(20, 60) for _ in range(n)]
    estimate = [a * rng.lognormvariate(0, noise) for a in agent]
    bound = max(sum(agent) / workers, max(a + e for a, e in zip(agent, evals, strict=True)))
    grid = list(range(n))
    rng.shuffle(grid)  # the grid's order says nothing about a case's length
    longest = sorted(range(n), key=lambda i: -estimate[i])
    exact = sorted(range(n), key=lambda i: -agent[i])
    orders = {
        "grid order, xdist's default chunks (no cost table)": (grid, n),
        "longest expected first, xdist's default chunks": (longest, n),
        "longest expected first, one at a time, not paired": (longest, 1),
        "**the harness with a cost table**: longest expected first, one at a time, paired": (
            paired_for_xdist(longest, workers),
            1,
        ),
        "(exact lengths, same layout)": (paired_for_xdist(exact, workers), 1),
    }
    return {
        name: wall(agent, evals, order, workers, chunk) / bound for name, (order, chunk) in orders.items()
    }


def section(trials: int, seed: int) -> str:
    rng = random.Random(seed)
    header = "| order | " + " | ".join(f"{n} cases, {w} workers" for n, w in GRIDS) + " |"
    lines = [
        "## Dispatch order",
        "",
        f"Command: `.venv/bin/python benchmarks/dispatch.py --write` - {machine_line()}.",
        "",
        f"Simulated (benchmarks/dispatch.py's docstring says how), {trials} trials per cell, seed {seed}, on",
        "pytest-xdist's own `LoadScheduling`. Each cell: run wall / max(sum agent / workers, longest case),",
        "median (90th percentile); 1.00 is the bound.",
    ]
    for noise in (0.5, 1.0):
        results: dict[str, list[str]] = {}
        for n, workers in GRIDS:
            runs = [trial(rng, n, workers, noise) for _ in range(trials)]
            for name in runs[0]:
                walls = sorted(r[name] for r in runs)
                p90 = walls[int(0.9 * (len(walls) - 1))]
                results.setdefault(name, []).append(f"{statistics.median(walls):.2f} ({p90:.2f})")
        lines += [
            "",
            f"Estimates within a factor of e^{noise:g} (lognormal noise, sigma {noise:g}):",
            "",
            header,
        ]
        lines.append("|---|" + "---|" * len(GRIDS))
        lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in results.items()]
    lines += [
        "",
        "- The first row is a run without config/case_costs.yaml; the fourth, the harness with one",
        "  (`python -m harness costs RUN --write`). The second and third are its parts alone: a sorted grid under",
        "  xdist's default chunks hands the first worker a quarter of its share from the top of the sort, and",
        "  one case at a time without the pairing hands the two longest cases to the first worker.",
        "- Not modelled: a limit on evaluation slots (workers that end together queue their last evaluations),",
        "  the CPU the cases share, estimates biased by model (here the noise is per case).",
    ]
    return "\n".join(lines) + "\n"


def _measured_run(config: Path, runs: Path, run_id: str, fast: str, slow: str) -> float:
    """One harness run of the uneven grid (the slow model last); its wall, process start to exit."""
    import subprocess
    import time

    from benchmarks.pipeline import _env, settle_podman

    specs = [f"id=s{k},litellm=openai/scripted-fixture-solver,api_base={fast}" for k in range(1, 6)]
    specs.append(f"id=s6,litellm=openai/scripted-fixture-solver,api_base={slow}")
    cmd = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-m", "demo",
           "--models", "s1,s2,s3,s4,s5,s6", *(a for spec in specs for a in ("--model-spec", spec)),
           "-n", "6", "--eval-workers", "2", "--no-eval-cache", "--no-gates", "--check-models", "no",
           "--harness-config", str(config), "--runs-dir", str(runs), "--run-id", run_id]  # fmt: skip
    settle_podman()
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if done.returncode not in (0, 1):
        raise SystemExit(
            f"harness run failed ({done.returncode}):\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
        )
    return wall


def measure(repeats: int) -> str:
    import shutil
    import subprocess
    import tempfile

    from benchmarks.pipeline import _env, build_images
    from harness.demo.llm_server import ScriptedLLMServer
    from harness.demo.scripts import FIXTURE_SCRIPTS

    build_images()
    walls: dict[str, list[float]] = {"grid order (no cost table)": [], "with the measured cost table": []}
    with (
        tempfile.TemporaryDirectory(prefix="bench-dispatch-") as tmp,
        ScriptedLLMServer(list(FIXTURE_SCRIPTS), latency_s=2.0) as fast,
        ScriptedLLMServer(list(FIXTURE_SCRIPTS), latency_s=8.0) as slow,
    ):
        plain, measured = Path(tmp) / "plain", Path(tmp) / "measured"
        shutil.copytree(ROOT / "config", plain)
        (plain / "case_costs.yaml").unlink(missing_ok=True)
        shutil.copytree(plain, measured)
        for k in range(repeats):
            walls["grid order (no cost table)"].append(
                _measured_run(plain, Path(tmp) / "runs", f"plain-{k}", fast.url, slow.url)
            )
            if k == 0:
                subprocess.run([sys.executable, "-m", "harness", "costs", str(Path(tmp) / "runs" / "plain-0"),
                                "--write", str(measured / "case_costs.yaml")],
                               cwd=ROOT, env=_env(), check=True, capture_output=True)  # fmt: skip
            walls["with the measured cost table"].append(
                _measured_run(measured, Path(tmp) / "runs", f"measured-{k}", fast.url, slow.url)
            )
    lines = [
        "## Dispatch order (measured)",
        "",
        f"Command: `.venv/bin/python benchmarks/dispatch.py --measure --repeats {repeats} --write` - "
        f"{machine_line()}.",
        "",
        "The harness on 3 fixture instances x 6 scripted models, five answering after 2 s per request and s6",
        "(last in grid order) after 8 s; 6 workers, 2 evaluation slots, evaluation cache off. Runs alternate:",
        "grid order, then with config/case_costs.yaml from `python -m harness costs` on the first grid-order",
        "run. Wall: process start to exit.",
        "",
        "| | median wall | runs |",
        "|---|---|---|",
    ]
    lines += [
        f"| {name} | {statistics.median(v):.1f} s | {', '.join(f'{w:.1f}' for w in v)} |"
        for name, v in walls.items()
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", action="store_true", help="real harness runs on an uneven fixture grid")
    parser.add_argument("--repeats", type=int, default=3, help="--measure: runs of each order")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    text = measure(args.repeats) if args.measure else section(args.trials, args.seed)
    print(text)
    if args.write:
        replace_section(text.splitlines()[0], text)


if __name__ == "__main__":
    main()
