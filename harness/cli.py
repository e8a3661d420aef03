"""`python -m harness ...`: dataset lock and verify, fixture images, leaderboard rebuild.

User errors (HarnessError) print one line and exit 2; nothing here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness import HarnessError
from harness.config import project_root


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="config directory (default: <root>/config)")
    sub = parser.add_subparsers(dest="command", required=True)

    dataset = sub.add_parser("dataset", help="the locked SWE-bench Lite snapshot")
    dsub = dataset.add_subparsers(dest="action", required=True)
    dsub.add_parser("verify", help="check data/swebench_lite against config/dataset.lock (offline)")
    lock = dsub.add_parser("lock", help="re-lock at a new HF revision (online; rewrites lock and snapshot)")
    lock.add_argument("--revision", required=True, help="Hugging Face dataset revision (commit sha)")

    images = sub.add_parser("images", help="container images")
    isub = images.add_subparsers(dest="action", required=True)
    fixtures = isub.add_parser(
        "fixtures", help="build the bundled fixture instance images (docker or podman)"
    )
    fixtures.add_argument("--force", action="store_true", help="rebuild even when up to date")

    board = sub.add_parser("leaderboard", help="rebuild a run's leaderboard and predictions from its records")
    board.add_argument("run_dir", type=Path, help="runs/<run_id>")
    return parser


def _dataset(args: argparse.Namespace, root: Path, config_dir: Path) -> str:
    from harness.dataset import lock_command, verify_command

    lock_path = config_dir / "dataset.lock"
    if args.action == "verify":
        return verify_command(root, lock_path)
    return lock_command(root, lock_path, args.revision)


def _images(args: argparse.Namespace) -> str:
    from harness.containers import build_fixture_images, detect_runtime, fixture_image_name
    from harness.testing.fixtures import fixture_rows

    runtime = detect_runtime()
    runtime.export_env()
    with tempfile.TemporaryDirectory(prefix="harness-fixtures-") as tmp:
        rows = fixture_rows(Path(tmp))
        built = build_fixture_images(runtime, rows, Path(tmp), force=args.force)
    names = ", ".join(fixture_image_name(i) for i in rows)
    return (
        f"fixture images ready ({runtime.name}; built {len(built)}, reused {len(rows) - len(built)}): {names}"
    )


def _leaderboard(args: argparse.Namespace) -> str:
    from harness.leaderboard import build_leaderboard, format_table
    from harness.records import RunPaths, load_records, write_predictions

    run_dir = args.run_dir.resolve()
    if not (run_dir / "cases").is_dir():
        raise HarnessError(f"{args.run_dir}: not a run folder (no cases/); pass runs/<run_id>")
    paths = RunPaths(run_dir.parent, run_dir.name)
    unreadable: list[Path] = []
    write_predictions(paths, load_records(paths, unreadable))
    rows = build_leaderboard(paths)
    notes = "".join(f"\nunreadable record left in place (not counted): {p}" for p in unreadable)
    return (
        format_table(rows)
        + f"\nwritten: {paths.leaderboard_csv}, {paths.runs_dir / 'leaderboard.csv'}"
        + notes
    )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = project_root()
    config_dir = (args.config or root / "config").resolve()
    try:
        if args.command == "dataset":
            out = _dataset(args, root, config_dir)
        elif args.command == "images":
            out = _images(args)
        else:
            out = _leaderboard(args)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0
