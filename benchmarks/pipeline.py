"""The harness's pipeline against two-phase, on the same grid (targets: <= 0.8x two-phase wall, >= 0.85 of
the ideal, <= 300 MB peak RSS per agent slot, median per-case overhead <= 1 s).

Grid: the 3 bundled fixture instances x M scripted models (`--model-spec` entries on one scripted
OpenAI-compatible server that waits `--latency` seconds on every request, so agents wait like real ones).

(a) harness: `pytest evals -m demo --models s1..sM -n W --eval-workers E --no-eval-cache`: agents and
    evaluations overlap (each case is evaluated as soon as its agent ends, in one of E slots, by the run's
    evaluation server, while its worker already runs the next case's agent in a fork of the run's agent
    server; `--no-prefetch` and `--agent-in-process` for the A/B).
(b) two-phase, as SWE-agent's run-batch and mini-swe-agent's batch mode do it: every agent first
    (W threads, the same mini-swe-agent runner), then every prediction through the official evaluator
    (E processes, swebench's `run_instance` as `run_evaluation` calls it, its own clean-up included), in a
    subprocess of its own.

Reported: both walls (process start to exit) and their ratio; the harness's efficiency against the ideal
max(sum agent / W, sum evaluation / E) from its own records; peak RSS of each xdist worker (psutil);
the median per-case overhead (case wall outside agent loop, queue and evaluation) of the harness run;
where the harness's wall went (start-up, the first round's imports, the cases, the exit).

    .venv/bin/python benchmarks/pipeline.py                # print the markdown section
    .venv/bin/python benchmarks/pipeline.py --write        # and replace "## Pipeline" in docs/performance.md
    .venv/bin/python benchmarks/pipeline.py --label X --write   # "## Pipeline (X)": another grid beside it
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perfdoc import machine_line, replace_section  # noqa: E402


def model_specs(url: str, n: int) -> list[str]:
    return [f"id=s{k},litellm=openai/scripted-fixture-solver,api_base={url}" for k in range(1, n + 1)]


def _env() -> dict[str, str]:
    """Both sides' environment. Python's default bytecode cache is on: a sandbox that sets
    PYTHONDONTWRITEBYTECODE (this one does) recompiles the harness's modules in every process it starts, which
    costs the harness (a controller, N workers, two servers) ~0.7 CPU-s per process and two-phase once."""
    env = {
        **os.environ,
        "OPENAI_API_KEY": "scripted-server-needs-no-key",
        "HARNESS_EVAL_CACHE": "/nonexistent",
    }
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _kind(process, pid: int) -> int | None:
    """Which of `pid`'s descendants `process` is: 0 an xdist worker, -1 the evaluation server, -2 the agent
    server, -3 an agent's fork; None for anything else (containers' tools, evaluation forks)."""
    cmdline = process.cmdline()
    if cmdline and "python" in Path(cmdline[0]).name and "-c" in cmdline:  # execnet workers
        return 0
    for module, server in (("harness.infra.eval_server", -1), ("harness.agents.server", -2)):
        if module in cmdline:
            return server if process.ppid() == pid else (-3 if server == -2 else None)
    return None


def _high_water_mark(pid: int) -> int:
    """The kernel's peak RSS of a live process (VmHWM, bytes): one sample near its end is its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss(pid: int, stop: threading.Event, out: dict[int, int]) -> None:
    """The peak RSS of `pid`'s xdist workers (and, as -1 and -2, of its evaluation and agent servers; as -3,
    the largest USS of an agent's fork) until `stop`.

    Cheap on purpose, since it shares the machine with the side it measures: every second it walks `pid`'s
    tree (harness.run.manifest.process_tree: psutil's children() reads every process on the machine, and
    podman keeps a conmon per exec session for minutes), reads each process's kind once, takes the kernel's
    peak (VmHWM) for workers and servers, and the USS (smaps_rollup, ~7 ms) of one fork, the oldest live one
    (its trajectory is the longest). Sampling every 0.2 s with psutil's children(), every command line and
    every fork's USS each time cost ~11 CPU-s of this process per 6-model run (2 cores), charged to the
    harness side alone."""
    import psutil

    from harness.run.manifest import process_tree

    kinds: dict[tuple[int, float], int | None] = {}
    while not stop.wait(1.0):
        forks = []
        for child_pid in process_tree(pid)[1:]:
            try:
                child = psutil.Process(child_pid)
                key = (child.pid, child.create_time())
                if key not in kinds:
                    kinds[key] = _kind(child, pid)
                if kinds[key] == -3:
                    forks.append((key[1], child))
                elif kinds[key] is not None:
                    slot = child.pid if kinds[key] == 0 else kinds[key]
                    out[slot] = max(out.get(slot, 0), _high_water_mark(child.pid))
            except (psutil.Error, OSError):
                continue
        if forks:
            with contextlib.suppress(psutil.Error, OSError):
                out[-3] = max(out.get(-3, 0), min(forks, key=lambda f: f[0])[1].memory_full_info().uss)


class MachineCpu:
    """The whole machine's CPU percent (psutil, every 0.5 s) while a side runs: its mean says whether the
    side waited on the LLM (room left) or on the CPU (containers, evaluations, imports)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        psutil.cpu_percent(None)
        while not self._stop.wait(0.5):
            self.samples.append(psutil.cpu_percent(None))

    def __enter__(self) -> MachineCpu:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mean(self) -> float:
        return statistics.mean(self.samples) if self.samples else float("nan")


def settle_podman() -> int:
    """Stop the conmon processes podman keeps after each Docker-API exec session (`exit_command_delay`, 300 s)
    before it runs that session's clean-up (a podman process each): the evaluations of one side leave ~6 per
    patch, and their clean-ups would run during the next side's timed run (alternating runs took turns paying
    for each other's). Only those of containers that no longer exist; returns how many."""
    import signal

    import psutil

    if not shutil.which("podman"):
        return 0
    live = set(
        subprocess.run(["podman", "ps", "-aq", "--no-trunc"], capture_output=True, text=True).stdout.split()
    )
    stopped = 0
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmd = proc.info["cmdline"] or []
        exec_session = proc.info["name"] == "conmon" and "-c" in cmd and "--exec-attach" in cmd
        if exec_session and cmd[cmd.index("-c") + 1] not in live:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
                stopped += 1
    return stopped


def build_images() -> None:
    """Build (or reuse) the fixture images before either side is timed: neither pays for them."""
    done = subprocess.run([sys.executable, "-m", "harness", "images", "fixtures"], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"building the fixture images failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")


def run_harness(
    tmp: Path, url: str, models: int, workers: int, slots: int, flags: tuple[str, ...] = (), root: Path = ROOT
) -> dict:
    """Side (a). `root`: the source tree whose harness runs (benchmarks/ab.py --base: another revision's, on
    this tree's .venv, first on PYTHONPATH so it shadows the editable install here)."""
    args = ["--models", ",".join(f"s{k}" for k in range(1, models + 1)), *flags]
    for spec in model_specs(url, models):
        args += ["--model-spec", spec]
    cmd = [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-m", "demo", *args,
           "-n", str(workers), "--eval-workers", str(slots), "--no-eval-cache", "--no-gates",
           "--check-models", "no", "--runs-dir", str(tmp / "runs"), "--run-id", "pipe"]  # fmt: skip
    rss: dict[int, int] = {}
    stop = threading.Event()
    t0, began = time.monotonic(), time.time()
    with MachineCpu() as cpu:
        env = _env() if root == ROOT else {**_env(), "PYTHONPATH": str(root)}
        proc = subprocess.Popen(
            cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        sampler = threading.Thread(target=peak_rss, args=(proc.pid, stop, rss), daemon=True)
        sampler.start()
        output = proc.communicate(timeout=1800)[0]
        wall, ended = time.monotonic() - t0, time.time()
    stop.set()
    server_rss, agent_server_rss, fork_uss = rss.pop(-1, 0), rss.pop(-2, 0), rss.pop(-3, 0)
    records = [json.loads(p.read_text()) for p in (tmp / "runs" / "pipe" / "cases").glob("*.json")]
    if proc.returncode != 0 or not records:
        raise SystemExit(f"harness run failed ({proc.returncode}):\n{output[-3000:]}")
    announced = next((line for line in output.splitlines() if "agent worker(s)" in line), "")
    return {"wall": wall, "began": began, "ended": ended, "records": records, "rss": sorted(rss.values()),
            "server_rss": server_rss, "agent_server_rss": agent_server_rss, "fork_uss": fork_uss,
            "announced": announced, "cpu": cpu.mean}  # fmt: skip


# --- (b) two-phase, in a subprocess of its own ---------------------------------------------------------


_client = None


def _evaluate_one(args: tuple) -> float:
    """swebench's own `run_instance`, as `run_evaluation` calls it: one Docker client per process (it makes one
    per run), its own container clean-up (stop with a 15 s grace, then remove; the harness's evaluator skips
    the grace, harness.infra.evaluation). The client is made without the SDK's `/version` call, as the
    harness's is: podman answers that slowly, and it is a transport detail, not part of two-phase."""
    global _client
    row, patch, model_id, log_root = args
    from swebench.harness import run_evaluation
    from swebench.harness.test_spec.test_spec import make_test_spec

    from harness.demo.fixtures import register_fixture_repos
    from harness.infra.evaluation import docker_client

    t0 = time.monotonic()
    register_fixture_repos()
    run_evaluation.RUN_EVALUATION_LOG_DIR = Path(log_root)
    _client = _client or docker_client(timeout=600)
    pred = {"instance_id": row["instance_id"], "model_name_or_path": model_id, "model_patch": patch}
    spec = make_test_spec(row, namespace="localhost")
    run_evaluation.run_instance(spec, pred, False, False, _client, "two-phase", 600)
    return time.monotonic() - t0


def two_phase_child(tmp: Path, url: str, models: int, workers: int, slots: int) -> None:
    """Phase 1: every agent (W threads). Phase 2: every prediction through the evaluator (E processes)."""
    from harness.agents import runner_for, settle_removal
    from harness.run.case import agent_task
    from harness.run.lifecycle import EvalRun, RunOptions

    options = RunOptions(config_dir=ROOT / "config", runs_dir=tmp / "runs", credentials=tmp / "none",
                         models=tuple(f"s{k}" for k in range(1, models + 1)),
                         model_specs=tuple(model_specs(url, models)), markexpr="demo", run_id="two-phase",
                         check_models="no", eval_cache=False)  # fmt: skip
    run = EvalRun(options)
    ctx = run.context()
    ctx.ensure_fixture_images()

    def agent(case):
        model = ctx.cfg.catalog.get(case.model_id)
        row = ctx.row(case.split, case.instance_id)
        task = agent_task(ctx, case, model, row)
        task.artifacts_dir.mkdir(parents=True, exist_ok=True)
        # Containers removed in the background, as mini-swe-agent's batch mode does (and the harness).
        return case, row, runner_for(model, remove_in_background=True).run(task)

    t0 = time.monotonic()
    with ThreadPoolExecutor(workers) as pool:
        done = list(pool.map(agent, run.selected))
    phase1 = time.monotonic() - t0
    jobs = [
        (row, result.patch, case.model_id, str(tmp / "eval" / case.case_id))
        for case, row, result in done
        if result.patch
    ]
    with ProcessPoolExecutor(slots) as pool:
        list(pool.map(_evaluate_one, jobs))
    for _, _, result in done:
        settle_removal(result)
    ctx.close()
    print(json.dumps({"phase1": phase1, "phase2": time.monotonic() - t0 - phase1, "evaluated": len(jobs)}))


def run_two_phase(tmp: Path, url: str, models: int, workers: int, slots: int) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--two-phase-child", str(tmp), "--url", url,
           "--models", str(models), "--workers", str(workers), "--eval-slots", str(slots)]  # fmt: skip
    t0 = time.monotonic()
    with MachineCpu() as cpu:
        done = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800)
    wall = time.monotonic() - t0
    if done.returncode != 0:
        raise SystemExit(f"two-phase run failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return {"wall": wall, "cpu": cpu.mean, **json.loads(done.stdout.strip().splitlines()[-1])}


def _epoch(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp).timestamp()


def breakdown(a: dict, workers: int) -> dict[str, float]:
    """Where the harness's wall went, from its records (their times have one-second resolution)."""
    recs = sorted(a["records"], key=lambda r: _epoch(r["started_at"]))
    first, last = _epoch(recs[0]["started_at"]), max(_epoch(r["finished_at"]) for r in recs)
    first_round = [r["overhead_s"] for r in recs[:workers]]
    later = [r["overhead_s"] for r in recs[workers:]] or [0.0]
    return {
        "startup": first - a["began"],
        "first_round_extra": statistics.mean(first_round) - statistics.median(later),
        "first_round_server_wait": statistics.mean(r.get("server_start_wait_s", 0.0) for r in recs[:workers]),
        "cases": last - first,
        "tail": a["ended"] - last,
    }


def median_run(runs: list[dict]) -> dict:
    """The run whose wall is the median (the lower middle one of an even count)."""
    return sorted(runs, key=lambda r: r["wall"])[(len(runs) - 1) // 2]


def section(
    a: dict, b: dict, args: argparse.Namespace, walls: tuple[list[float], list[float]] | None = None
) -> str:
    recs = a["records"]
    agent_sum = sum(r["agent_wall_s"] + (r.get("container_start_s") or 0) for r in recs)
    eval_sum = sum(r["eval_wall_s"] for r in recs)
    ideal = max(agent_sum / args.workers, eval_sum / args.eval_slots)
    ratio, efficiency = a["wall"] / b["wall"], ideal / a["wall"]
    walls_a, walls_b = walls or ([a["wall"]], [b["wall"]])
    repeated = (
        f"\n- **{len(walls_a)} alternating runs of each side** (the table and the figures below are the median-wall "
        f"run of each): harness {', '.join(f'{w:.1f}' for w in walls_a)} s; two-phase "
        f"{', '.join(f'{w:.1f}' for w in walls_b)} s; ratio of each pair "
        f"{', '.join(f'{x / y:.2f}x' for x, y in zip(walls_a, walls_b, strict=True))}."
        if len(walls_a) > 1
        else ""
    )
    overheads = [r["overhead_s"] for r in recs if r["agent_wall_s"] > 0]
    median_overhead = statistics.median(overheads)
    rss_mb = [round(x / 2**20) for x in a["rss"]]
    rss = ", ".join(f"{m} MB" for m in rss_mb) or "not sampled"
    server_mb = round(a["server_rss"] / 2**20)
    agent_server_mb, fork_mb = round(a["agent_server_rss"] / 2**20), round(a["fork_uss"] / 2**20)
    agent_memory = (
        f"the run's agent server (litellm and mini-swe-agent, once per run) {agent_server_mb} MB, and each "
        f"agent's fork at most {fork_mb} MB of its own (USS): per agent slot {max(rss_mb, default=0) + fork_mb} MB"
        if agent_server_mb
        else "mini-swe-agent and litellm in each worker (no agent server)"
    )
    parts = breakdown(a, args.workers)
    servers = "evaluation server's" if args.agent_in_process else "evaluation and agent servers'"
    first_round_why = (
        "each worker imports litellm, ~6 s of CPU, all at once"
        if args.agent_in_process
        else "the first agents wait for the agent server's one litellm import, ~4.5 s of CPU, and all start at once"
    )
    flags = "".join(f" {f}" for f in harness_flags(args))
    repeats = f" --repeats {args.repeats}" if args.repeats > 1 else ""
    cmd = (f"`.venv/bin/python benchmarks/pipeline.py --models {args.models} --latency {args.latency:g} "
           f"--workers {args.workers} --eval-slots {args.eval_slots}{repeats}{flags}"
           f"{f' --label {args.label!r}' if args.label else ''} --write`")  # fmt: skip
    heading = "## Pipeline" + (f" ({args.label})" if args.label else "")
    no_prefetch = (
        ", the next agent not started while a case is graded (--no-prefetch)" if args.no_prefetch else ""
    ) + (", mini-swe-agent inside each worker (--agent-in-process)" if args.agent_in_process else "")
    row_a = (f"| (a) harness, agents and evaluations overlapping | {a['wall']:.1f} s | {a['cpu']:.0f} % "
             f"| sum of agent time {agent_sum:.1f} s, of evaluation time {eval_sum:.1f} s |")  # fmt: skip
    row_b = (f"| (b) two-phase (agents, then `run_instance` on the predictions) | {b['wall']:.1f} s "
             f"| {b['cpu']:.0f} % | agents {b['phase1']:.1f} s, then evaluations {b['phase2']:.1f} s "
             f"({b['evaluated']} patches) |")  # fmt: skip

    def verdict(ok: bool) -> str:
        return "within target" if ok else "**misses the target**"

    return f"""{heading}

Command: {cmd} — {machine_line()}.

Grid: 3 fixture instances x {args.models} scripted models ({len(recs)} cases, K=1), every LLM request
answered after {args.latency:g} s; {args.workers} agent workers, {args.eval_slots} evaluation slots, evaluation
cache off{no_prefetch}. The fixture images are built before either side is timed; both sides
run with Python's bytecode cache on (a user's default).

| | wall | machine CPU (mean) | detail |
|---|---|---|---|
{row_a}
{row_b}

- **harness / two-phase: {ratio:.2f}x** (target <= 0.8x: {verdict(ratio <= 0.8)}).{repeated}
- **efficiency against the ideal** max(sum agent / {args.workers}, sum evaluation / {args.eval_slots}) = {ideal:.1f} s: **{efficiency:.2f}**
  (target >= 0.85: {verdict(efficiency >= 0.85)}). Both walls include interpreter and pytest start-up,
  worker start and the first case's imports, which the ideal does not.
- **where the harness's wall went** (from its records, one-second resolution): {parts["startup"]:.0f} s from
  process start to the first case (pytest, the workers importing pytest and the harness, collection, the
  {servers} start); the first case of each worker then spent {parts["first_round_extra"]:.1f} s
  more outside its agent loop than later cases ({first_round_why}; measured wait for the servers' load,
  `server_start_wait_s`: {parts["first_round_server_wait"]:.1f} s on average);
  {parts["cases"]:.0f} s from the first case's start to the last verdict; {parts["tail"]:.0f} s to exit.
- **median per-case overhead** (case wall outside agent loop, hand-off, queue and evaluation; the agent's
  container start included where its first request did not hide it, its removal runs during grading):
  {median_overhead:.2f} s over {len(overheads)} cases
  (max {max(overheads):.2f} s; the demo's own figure is in "Demo per-case overhead").
- **peak RSS per xdist worker**: {rss}; {agent_memory}
  (target <= 300 MB per agent slot: {verdict(bool(rss_mb) and max(rss_mb) + fork_mb <= 300)}); the run's
  evaluation server (one process per run; its forks share its pages): {server_mb} MB.
- The terminal announced: `{a["announced"].strip()}`.
"""


def add_grid_arguments(parser: argparse.ArgumentParser, *, models: int, latency: float, workers: int) -> None:
    """The grid's options (every benchmark of the pipeline grid takes them)."""
    parser.add_argument("--models", type=int, default=models)
    parser.add_argument("--latency", type=float, default=latency, help="seconds before each LLM answer")
    parser.add_argument("--workers", type=int, default=workers)
    parser.add_argument("--eval-slots", type=int, default=2)


def harness_flags(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(
        f
        for f, on in (("--no-prefetch", args.no_prefetch), ("--agent-in-process", args.agent_in_process))
        if on
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(parser, models=4, latency=0.5, workers=4)
    parser.add_argument("--write", action="store_true")
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="alternating runs of each side; the median-wall run of each is shown",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep the harness run under this folder")
    parser.add_argument("--no-prefetch", action="store_true", help="run the harness with --no-prefetch")
    parser.add_argument(
        "--agent-in-process", action="store_true", help="run the harness with --agent-in-process"
    )
    parser.add_argument("--label", default="", help='section heading: "## Pipeline (LABEL)"')
    parser.add_argument("--two-phase-child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--url", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.two_phase_child is not None:
        two_phase_child(args.two_phase_child, args.url, args.models, args.workers, args.eval_slots)
        return
    from harness.demo.llm_server import ScriptedLLMServer
    from harness.demo.scripts import FIXTURE_SCRIPTS

    build_images()
    flags = harness_flags(args)
    runs_a, runs_b = [], []
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS), latency_s=args.latency) as server:
        for _ in range(args.repeats):  # alternating, so that a drift of the machine hits both sides
            settle_podman()
            with tempfile.TemporaryDirectory(prefix="bench-two-phase-") as tmp:
                runs_b.append(
                    run_two_phase(Path(tmp), server.url, args.models, args.workers, args.eval_slots)
                )
            settle_podman()
            if args.keep is not None:
                keep = args.keep / str(len(runs_a))
                runs_a.append(
                    run_harness(keep, server.url, args.models, args.workers, args.eval_slots, flags)
                )
            else:
                with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
                    runs_a.append(
                        run_harness(Path(tmp), server.url, args.models, args.workers, args.eval_slots, flags)
                    )
    text = section(
        median_run(runs_a),
        median_run(runs_b),
        args,
        walls=([r["wall"] for r in runs_a], [r["wall"] for r in runs_b]),
    )
    print(text)
    if args.write:
        replace_section(text.splitlines()[0], text)


if __name__ == "__main__":
    main()
