"""A/B on the pipeline grid: the harness side of benchmarks/pipeline.py only, alternating runs with and without
one harness flag, or of an earlier revision and this tree (this machine's walls vary by several seconds from run
to run, so one pair proves little).

    .venv/bin/python benchmarks/ab.py --flag=--agent-in-process --repeats 3          # print the section
    .venv/bin/python benchmarks/ab.py --flag=--agent-in-process --repeats 3 --write  # "## A/B (...)" in docs/performance.md
    .venv/bin/python benchmarks/ab.py --base a43fea9 --repeats 4 --write            # that revision against this tree

`--base REV` exports REV's files (git archive) to a temporary folder and runs its harness on this tree's .venv
(first on PYTHONPATH, so it shadows the editable install); the dependencies are this tree's.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.perfdoc import machine_line, replace_section  # noqa: E402
from benchmarks.pipeline import add_grid_arguments, build_images, run_harness, settle_podman  # noqa: E402


@contextlib.contextmanager
def exported(rev: str) -> Iterator[Path]:
    """REV's files in a temporary folder, byte-compiled (this tree has its bytecode from earlier runs)."""
    with tempfile.TemporaryDirectory(prefix="bench-ab-base-") as tmp:
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=False)
        if archive.returncode != 0:
            raise SystemExit(f"git archive {rev}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", f"{tmp}/harness", f"{tmp}/evals"], check=True
        )
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--flag", help="a harness option, e.g. --agent-in-process")
    what.add_argument("--base", help="a git revision to compare this tree with")
    parser.add_argument("--repeats", type=int, default=3)
    add_grid_arguments(parser, models=6, latency=2.0, workers=6)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    from harness.demo.llm_server import ScriptedLLMServer
    from harness.demo.scripts import FIXTURE_SCRIPTS

    build_images()
    walls: dict[str, list[float]] = {"without": [], "with": []}
    with contextlib.ExitStack() as stack:
        base = stack.enter_context(exported(args.base)) if args.base else ROOT
        sides = (("without", base, ()), ("with", ROOT, (args.flag,) if args.flag else ()))
        server = stack.enter_context(ScriptedLLMServer(list(FIXTURE_SCRIPTS), latency_s=args.latency))
        for _ in range(args.repeats):
            for side, root, flags in sides:
                settle_podman()  # the last run's exec sessions' clean-ups would land in this one
                with tempfile.TemporaryDirectory(prefix="bench-ab-") as tmp:
                    run = run_harness(
                        Path(tmp), server.url, args.models, args.workers, args.eval_slots, flags, root
                    )
                walls[side].append(run["wall"])

    def row(side: str, label: str) -> str:
        values = walls[side]
        listed = ", ".join(f"{w:.1f}" for w in values)
        return f"| {label} | {statistics.median(values):.1f} s | {min(values):.1f}-{max(values):.1f} s | {listed} |"

    what = f"--flag={args.flag}" if args.flag else f"--base {args.base}"
    command = (f"`.venv/bin/python benchmarks/ab.py {what} --repeats {args.repeats} --models {args.models} "
               f"--latency {args.latency:g} --workers {args.workers} --eval-slots {args.eval_slots} --write`")  # fmt: skip
    heading = f"## A/B ({args.flag})" if args.flag else f"## A/B (base {args.base})"
    if args.flag:
        compared = f"without and {args.repeats} with `{args.flag}`"
        labels = ("default", f"`{args.flag}`")
    else:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        compared = f"of revision {args.base} and {args.repeats} of this tree (HEAD {head.stdout.strip()} + its changes)"
        labels = (f"{args.base}", "this tree")
    section = f"""{heading}

Command: {command} — {machine_line()}.

The harness side of the pipeline grid (3 fixture instances x {args.models} scripted models, {args.latency:g} s per
request, {args.workers} workers, {args.eval_slots} evaluation slots, evaluation cache off), {args.repeats} runs
{compared}, alternating. Wall: process start to exit.

| | median wall | range | runs |
|---|---|---|---|
{row("without", labels[0])}
{row("with", labels[1])}
"""
    print(section)
    if args.write:
        replace_section(heading, section)


if __name__ == "__main__":
    main()
