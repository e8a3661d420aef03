"""Where the harness's CPU goes: the pipeline benchmark's harness side (benchmarks/pipeline.py, side (a)) with
every process's CPU time attributed to a kind (xdist workers, the controller, the agent and evaluation
servers with their forks, podman, container processes).

Every 0.25 s it reads each process's user+system time (psutil); a process's last reading is its total,
minus its first reading when it was already running. A server's `children` column is its reaped forks (and
their children); the controller's includes its reaped workers. The sampler is itself a process and shows up
as `other:python`. Prints a table; nothing is written.

    .venv/bin/python benchmarks/cpu_by_process.py --models 6 --latency 2 --workers 6 --eval-slots 2
    .venv/bin/python benchmarks/cpu_by_process.py ... --agent-in-process     # the A/B
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.pipeline import add_grid_arguments, build_images, run_harness  # noqa: E402


def kind(process) -> str | None:
    import psutil

    try:
        cmdline, name = process.cmdline(), process.name()
    except psutil.Error:
        return None
    line = " ".join(cmdline)
    for needle, label in (("harness.infra.eval_server", "evaluation server (+forks)"),
                          ("harness.agents.server", "agent server (+forks)")):  # fmt: skip
        if needle in line:
            return label
    if "pytest" in line and " evals" in line:
        return "controller"
    if "python" in name and "-c" in cmdline:
        return "xdist worker"
    if name == "podman":
        return "podman service" if "service" in cmdline else "podman CLI"
    if name == "conmon":
        return "conmon (+container processes)"
    return f"other:{name}"


class CpuByProcess:
    def __init__(self) -> None:
        self.seen: dict[tuple[int, float], list] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        import psutil

        while not self._stop.wait(0.25):
            for process in psutil.process_iter():
                try:
                    key, times = (process.pid, process.create_time()), process.cpu_times()
                except psutil.Error:
                    continue
                if key not in self.seen:
                    self.seen[key] = [kind(process), times, times]
                self.seen[key][2] = times

    def __enter__(self) -> CpuByProcess:
        import psutil

        self.began, self.machine0 = time.time(), psutil.cpu_times()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        import psutil

        self._stop.set()
        self._thread.join()
        self.machine1 = psutil.cpu_times()

    def table(self) -> list[str]:
        own, children, count = collections.Counter(), collections.Counter(), collections.Counter()
        for (_, created), (label, first, last) in self.seen.items():
            if label is None:
                continue
            base = first if created < self.began - 1 else None  # running before: count only the change
            own[label] += last.user + last.system - (base.user + base.system if base else 0)
            children[label] += (
                last.children_user
                + last.children_system
                - (base.children_user + base.children_system if base else 0)
            )
            count[label] += 1

        def busy(t) -> float:
            return t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0)

        lines = [f"machine: {busy(self.machine1) - busy(self.machine0):.1f} CPU-s busy", "",
                 "| kind | processes | own CPU-s | reaped children's CPU-s |", "|---|---|---|---|"]  # fmt: skip
        for label, seconds in own.most_common():
            if seconds + children[label] >= 0.3:
                lines.append(f"| {label} | {count[label]} | {seconds:.1f} | {children[label]:.1f} |")
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_grid_arguments(parser, models=6, latency=2.0, workers=6)
    parser.add_argument("--agent-in-process", action="store_true")
    args = parser.parse_args()
    from harness.demo.llm_server import ScriptedLLMServer
    from harness.demo.scripts import FIXTURE_SCRIPTS

    build_images()
    flags = ("--agent-in-process",) if args.agent_in_process else ()
    with (
        ScriptedLLMServer(list(FIXTURE_SCRIPTS), latency_s=args.latency) as server,
        tempfile.TemporaryDirectory(prefix="bench-cpu-") as tmp,
        CpuByProcess() as cpu,
    ):
        result = run_harness(Path(tmp), server.url, args.models, args.workers, args.eval_slots, flags)
    print(f"harness wall {result['wall']:.1f} s ({' '.join(flags) or 'agent server'})")
    print("\n".join(cpu.table()))


if __name__ == "__main__":
    main()
