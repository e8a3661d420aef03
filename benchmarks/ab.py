"""A/B of one harness flag on the pipeline grid: the harness side of benchmarks/pipeline.py only, runs with and
without the flag alternating (this machine's walls vary by several seconds from run to run, so one pair
proves little).

    .venv/bin/python benchmarks/ab.py --flag=--agent-in-process --repeats 3          # print the section
    .venv/bin/python benchmarks/ab.py --flag=--agent-in-process --repeats 3 --write  # "## A/B (...)" in docs/performance.md
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perfdoc import machine_line, replace_section  # noqa: E402
from benchmarks.pipeline import add_grid_arguments, build_images, run_harness  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flag", required=True, help="a harness option, e.g. --agent-in-process")
    parser.add_argument("--repeats", type=int, default=3)
    add_grid_arguments(parser, models=6, latency=2.0, workers=6)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from harness.demo.llm_server import ScriptedLLMServer
    from harness.demo.scripts import FIXTURE_SCRIPTS

    build_images()
    walls: dict[str, list[float]] = {"without": [], "with": []}
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS), latency_s=args.latency) as server:
        for _ in range(args.repeats):
            for side, flags in (("without", ()), ("with", (args.flag,))):
                with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
                    run = run_harness(
                        Path(tmp), server.url, args.models, args.workers, args.eval_slots, flags
                    )
                walls[side].append(run["wall"])

    def row(side: str, label: str) -> str:
        values = walls[side]
        listed = ", ".join(f"{w:.1f}" for w in values)
        return f"| {label} | {statistics.median(values):.1f} s | {min(values):.1f}-{max(values):.1f} s | {listed} |"

    command = (f"`.venv/bin/python benchmarks/ab.py --flag={args.flag} --repeats {args.repeats} --models {args.models} "
               f"--latency {args.latency:g} --workers {args.workers} --eval-slots {args.eval_slots} --write`")  # fmt: skip
    heading = f"## A/B ({args.flag})"
    section = f"""{heading}

Command: {command} — {machine_line()}.

The harness side of the pipeline grid (3 fixture instances x {args.models} scripted models, {args.latency:g} s per
request, {args.workers} workers, {args.eval_slots} evaluation slots, evaluation cache off), {args.repeats} runs
without and {args.repeats} with `{args.flag}`, alternating. Wall: process start to exit.

| | median wall | range | runs |
|---|---|---|---|
{row("without", "default")}
{row("with", f"`{args.flag}`")}
"""
    print(section)
    if args.write:
        replace_section(heading, section)


if __name__ == "__main__":
    main()
