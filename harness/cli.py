"""`python -m harness ...`: dataset lock and verify, instance images (fixtures, pull, prune), leaderboard rebuild,
merge of shard runs, calibration.

User errors (HarnessError) print one line and exit 2; nothing here prints a traceback for them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from harness.config import project_root
from harness.errors import HarnessError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=None, help="config directory (default: <root>/config)")
    sub = parser.add_subparsers(dest="command", required=True)

    dataset = sub.add_parser("dataset", help="the locked SWE-bench Lite snapshot")
    dsub = dataset.add_subparsers(dest="action", required=True)
    dsub.add_parser("verify", help="check data/swebench_lite against config/dataset.lock (offline)")
    lock = dsub.add_parser("lock", help="re-lock at a new HF revision (online; rewrites lock and snapshot)")
    lock.add_argument("--revision", required=True, help="Hugging Face dataset revision (commit sha)")

    _images_parser(sub)

    models = sub.add_parser("models", help="the model catalog against the providers")
    msub = models.add_subparsers(dest="action", required=True)
    check = msub.add_parser("check", help="ask each provider's /models which catalog models exist (online)")
    check.add_argument("ids", nargs="*", help="model ids (default: every LLM model of the catalog)")
    prices = msub.add_parser("prices", help="show catalog prices; --refresh updates config/prices.yaml")
    prices.add_argument("--refresh", action="store_true", help="read OpenRouter's public model list (online)")

    gates = sub.add_parser("gates", help="evaluate config/gates.yaml on a run (exit 1 when a gate fails)")
    gates.add_argument("run_dir", type=Path, help="runs/<run_id>")
    gates.add_argument(
        "--compare-to", type=Path, default=None, help="runs/<run_id> of a rerun of the same grid"
    )
    gates.add_argument("--grids", default=None, help="grids the run covered (default: from its manifest)")

    compare = sub.add_parser("compare", help="paired comparison of two runs: per model delta, p-value, flips")
    compare.add_argument("run_a", type=Path)
    compare.add_argument("run_b", type=Path)

    cal = sub.add_parser(
        "calibrate", help="gold R times + a no-op patch once per instance: stable, flaky or broken here"
    )
    cal.add_argument("-m", dest="grid", required=True, help="grid (mark expression) whose instances to check")
    cal.add_argument("--repeats", type=int, default=3, help="gold runs per instance (default 3)")
    cal.add_argument("--instances", default=None, help="ID[,ID...]: only these instances of the grid")
    cal.add_argument(
        "--runs-dir", type=Path, default=None, help="where the evidence run goes (default: runs/)"
    )
    cal.add_argument("--run-id", default=None, help="evidence run id (default: calibrate-<UTC time>)")
    cal.add_argument(
        "--image-namespace", default="swebench", help="as for pytest evals (fixtures: localhost)"
    )
    cal.add_argument("--dataset-source", default="auto", choices=["auto", "snapshot", "hf"])
    cal.add_argument("--no-quarantine-update", action="store_true", help="report only; leave quarantine.yaml")

    board = sub.add_parser("leaderboard", help="rebuild a run's leaderboard and predictions from its records")
    board.add_argument("run_dir", type=Path, help="runs/<run_id>")
    board.add_argument("--version", default=None, help="v0..v3 (config/leaderboard_columns.yaml; default v3)")

    merge = sub.add_parser(
        "merge", help="join shard runs (--shard K/N) into one run; rebuild leaderboard and gates"
    )
    merge.add_argument("runs", nargs="+", type=Path, help="runs/<run_id> of each shard")
    merge.add_argument("--into", type=Path, required=True, help="runs/<new_run_id>: the merged run folder")

    costs = sub.add_parser(
        "costs", help="measured seconds per evaluation and agent attempt, for --shard balance"
    )
    costs.add_argument("runs", nargs="+", type=Path, help="runs/<run_id> of finished runs")
    costs.add_argument("--write", type=Path, default=None, help="write the table (config/case_costs.yaml)")
    return parser


def _images_parser(sub) -> None:
    """`images fixtures | pull | prune`."""
    images = sub.add_parser("images", help="container images")
    isub = images.add_subparsers(dest="action", required=True)
    fixtures = isub.add_parser(
        "fixtures", help="build the bundled fixture instance images (docker or podman)"
    )
    fixtures.add_argument("--force", action="store_true", help="rebuild even when up to date")
    pull = isub.add_parser("pull", help="pull (or check) every instance image a grid needs; record digests")
    pull.add_argument("-m", dest="grid", required=True, help="grid (mark expression), as for pytest evals")
    prune = isub.add_parser("prune", help="remove the namespace's instance images no case of the grid needs")
    prune.add_argument(
        "--keep-grid", dest="grid", required=True, help="grid (mark expression) whose images stay"
    )
    prune.add_argument("--dry-run", action="store_true", help="list what would be removed")
    for action in (pull, prune):
        action.add_argument(
            "--image-namespace", default="swebench", help="as for pytest evals (default swebench)"
        )
        action.add_argument("--models", default=None, help="ID[,ID...]: replace every grid's model set")
    pull.add_argument("--runs-dir", type=Path, default=None, help="where images.json goes (default: runs/)")


def _dataset(args: argparse.Namespace, root: Path, config_dir: Path) -> str:
    from harness.infra.dataset import lock_command, verify_command

    lock_path = config_dir / "dataset.lock"
    if args.action == "verify":
        return verify_command(root, lock_path)
    return lock_command(root, lock_path, args.revision)


def _grid_images(args: argparse.Namespace, config_dir: Path, *, every_model: bool):
    """(grid cases, ImageNeeds) of `-m`/`--keep-grid`; every_model: as if every case needed its image."""
    from harness.config import HarnessConfig
    from harness.infra.images import images_for
    from harness.run.grid import build_grid, cases_selected_by

    cfg = HarnessConfig(config_dir)
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    cases = cases_selected_by(args.grid, build_grid(cfg, models=models))
    if not cases:
        raise HarnessError(
            f"-m {args.grid!r} selects no case; use a grid of config/sweagent.yaml (demo, i0, i1, ...)"
        )
    kind = (lambda m: "gold") if every_model else (lambda m: cfg.catalog.get(m).kind)
    return cases, images_for(cases, args.image_namespace, kind, cfg.agent.agent.backend)


def _images_pull(args: argparse.Namespace, root: Path, config_dir: Path) -> tuple[str, int]:
    from harness.infra.containers import detect_runtime
    from harness.infra.images import local_images, make_ready, normal_name, record_digests, space_lines

    cases, needs = _grid_images(args, config_dir, every_model=False)
    runtime = detect_runtime()
    runtime.export_env()
    have = local_images(runtime)
    missing = [n for n in needs if normal_name(n.image) not in have]
    print(f"grid {args.grid}: {len(needs)} instance image(s) for {len(cases)} case(s); "
          f"{len(needs) - len(missing)} present, {len(missing)} missing", flush=True)  # fmt: skip
    print("\n".join(space_lines(runtime, needs, have)), flush=True)
    if any(n.fixture for n in missing):
        print(_images(argparse.Namespace(force=False)), flush=True)
    report = make_ready(runtime, needs, stop_at_failure=False)
    lines = [f"failed {image}: {why}" for image, why in report.failed.items()]
    written = record_digests((args.runs_dir or root / "runs").resolve(), runtime, report.details)
    lines.append(f"ready: {len(report.present) + len(report.pulled)}/{len(needs)} (pulled {len(report.pulled)}); "
                 f"digests in {written}")  # fmt: skip
    if report.failed:
        lines.append(
            "pull them where the registry is reachable, or use --image-namespace with a mirror that has them"
        )
    return "\n".join(lines), int(bool(report.failed))


def _images_prune(args: argparse.Namespace, config_dir: Path) -> str:
    import shutil

    from harness.infra.containers import detect_runtime
    from harness.infra.images import gb, prune, store_path

    _, needs = _grid_images(args, config_dir, every_model=True)
    runtime = detect_runtime()
    removed, listed = prune(runtime, {n.image for n in needs}, args.image_namespace, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    store = store_path(runtime)
    lines = [f"{verb} {len(removed)} {args.image_namespace}/ instance image(s) not in {args.grid} ({gb(listed)} listed; "
             f"shared layers stay while another image uses them); kept {len(needs)}; {gb(shutil.disk_usage(store).free)} free in {store}"]  # fmt: skip
    return "\n".join(lines + [f"  {image}" for image in removed])


def _images(args: argparse.Namespace) -> str:
    from harness.demo.fixtures import fixture_rows
    from harness.infra.containers import build_fixture_images, detect_runtime, fixture_image_name

    runtime = detect_runtime()
    runtime.export_env()
    with tempfile.TemporaryDirectory(prefix="harness-fixtures-") as tmp:
        rows = fixture_rows(Path(tmp))
        built = build_fixture_images(runtime, rows, Path(tmp), force=args.force)
    names = ", ".join(fixture_image_name(i) for i in rows)
    return (
        f"fixture images ready ({runtime.name}; built {len(built)}, reused {len(rows) - len(built)}): {names}"
    )


def _models(args: argparse.Namespace, config_dir: Path) -> str:
    from harness.config import HarnessConfig
    from harness.infra.providers import check_models, refresh_prices
    from harness.infra.secrets import load_credentials

    load_credentials(config_dir.parent / "secrets" / "credentials.txt")
    cfg = HarnessConfig(config_dir)
    if args.action == "prices":
        note = refresh_prices(cfg.catalog, config_dir / "prices.yaml") if args.refresh else ""
        cfg = HarnessConfig(config_dir)
        rows = [
            f"{m.id:22} in {_usd(m.price_in_per_mtok):>8}  out {_usd(m.price_out_per_mtok):>8}  "
            f"per Mtok  ({m.price_source or 'no source'}, {m.price_date or 'no date'})"
            for m in cfg.catalog.models
            if m.kind == "litellm"
        ]
        return "\n".join([*rows, note] if note else rows)
    wanted = [cfg.catalog.get(i) for i in args.ids] or [m for m in cfg.catalog.models if m.kind == "litellm"]
    found = check_models(cfg.catalog, wanted)
    return "\n".join(f"{a.model_id:22} {a.status:15} {a.detail}" for a in found)


def _usd(value: float | None) -> str:
    return "unknown" if value is None else f"${value:g}"


def _run_paths(run_dir: Path):
    from harness.results.records import RunPaths

    run_dir = run_dir.resolve()
    if not (run_dir / "cases").is_dir():
        raise HarnessError(f"{run_dir}: not a run folder (no cases/); pass runs/<run_id>")
    return RunPaths(run_dir.parent, run_dir.name)


def _gates(args: argparse.Namespace, config_dir: Path) -> tuple[str, int]:
    import json

    from harness.config.loading import load_gates
    from harness.results.gates import evaluate_gates, format_gates
    from harness.results.records import load_records

    paths = _run_paths(args.run_dir)
    manifest = json.loads(paths.manifest.read_text()) if paths.manifest.is_file() else {}
    grids = frozenset(args.grids.split(",")) if args.grids else frozenset(manifest.get("grids", []))
    other = load_records(_run_paths(args.compare_to)) if args.compare_to else None
    results = evaluate_gates(
        load_gates(config_dir / "gates.yaml"),
        load_records(paths),
        active_grids=grids,
        cpu_samples=manifest.get("cpu_samples", []),
        compare_to=other,
        cpu_harness_samples=manifest.get("cpu_harness_samples"),
    )
    failed = any(r.status == "failed" for r in results)
    return "\n".join(format_gates(results)), int(failed)


def _compare(args: argparse.Namespace) -> str:
    from harness.results.compare import compare_runs, format_comparison
    from harness.results.records import load_records

    a, b = _run_paths(args.run_a), _run_paths(args.run_b)
    return format_comparison(compare_runs(load_records(a), load_records(b)), a.run_id, b.run_id)


def _rebuild(paths, config_dir: Path, version: str | None = None) -> tuple[str, list[Path]]:
    """Predictions and leaderboard (CSV + HTML, runs/leaderboard.csv) from a run's records; the table."""
    from harness.results.leaderboard import build_leaderboard, format_table
    from harness.results.records import load_records, runs_lock, write_predictions

    unreadable: list[Path] = []
    records = load_records(paths, unreadable)
    write_predictions(paths, records)
    with runs_lock(paths.runs_dir):  # runs/leaderboard.csv is shared with runs finishing now
        rows = build_leaderboard(
            paths, version=version, records=records, columns_file=config_dir / "leaderboard_columns.yaml"
        )
        _views(paths, config_dir, records)
    return format_table(rows), unreadable


def _leaderboard(args: argparse.Namespace, config_dir: Path) -> str:
    paths = _run_paths(args.run_dir)
    table, unreadable = _rebuild(paths, config_dir, args.version)
    notes = "".join(f"\nunreadable record left in place (not counted): {p}" for p in unreadable)
    return table + f"\nwritten: {paths.leaderboard_csv}, {paths.runs_dir / 'leaderboard.csv'}" + notes


def _merge(args: argparse.Namespace, config_dir: Path) -> str:
    from dataclasses import asdict

    from harness.config.loading import load_gates
    from harness.results.gates import evaluate_gates, format_gates
    from harness.results.merge import add_to_manifest, merge_runs
    from harness.results.records import RunPaths

    parts = [_run_paths(run) for run in args.runs]
    into = args.into.resolve()
    result = merge_runs(parts, RunPaths(into.parent, into.name))
    table, _ = _rebuild(result.paths, config_dir)
    grids = frozenset(g for part in result.parts for g in part.get("grids", []))
    gates = evaluate_gates(
        load_gates(config_dir / "gates.yaml"), result.records, active_grids=grids, cpu_samples=[]
    )
    add_to_manifest(result.paths, gates=[asdict(g) for g in gates])
    shards = ", ".join(f"{p['run_id']} ({p['cases']})" for p in result.parts)
    return "\n".join(
        [
            table,
            f"merged {len(result.records)} cases from {shards} into {result.paths.root}"
            + (f"; {result.duplicates} identical duplicate(s) kept once" if result.duplicates else ""),
            *format_gates([g for g in gates if g.status != "not-applicable"]),
        ]
    )


def _costs(args: argparse.Namespace) -> str:
    from harness.results.records import load_records
    from harness.run.shard import measured_costs, write_case_costs

    paths = [_run_paths(run) for run in args.runs]
    costs = measured_costs([rec for p in paths for rec in load_records(p)])
    lines = [f"{k:40} eval {v:8.1f} s" for k, v in costs.evaluation_s.items()]
    lines += [f"{k:40} agent {v:7.1f} s" for k, v in costs.agent_s.items()]
    lines += [f"{k:40} agents {v:6.1f} s (every model's, median)" for k, v in costs.agent_instance_s.items()]
    if args.write:
        write_case_costs(args.write, costs, [p.run_id for p in paths])
        lines.append(f"written: {args.write}")
    return "\n".join(lines or ["no evaluated or agent-run cases in these runs"])


def _views(paths, config_dir: Path, records) -> None:
    """Case, instance and repository pages and the memo, as the end of the run wrote them."""
    import json

    from harness.config import HarnessConfig
    from harness.run.finish import load_compare_run, write_views

    manifest = json.loads(paths.manifest.read_text()) if paths.manifest.is_file() else {}
    other = manifest.get("compare_to")
    try:
        compare = (other, load_compare_run(paths.runs_dir, other)) if other else None
    except (HarnessError, OSError):
        compare = None
    write_views(paths, HarnessConfig(config_dir), records, compare)  # type: ignore[arg-type]


def _calibrate(args: argparse.Namespace, root: Path, config_dir: Path) -> tuple[str, int]:
    from datetime import UTC, datetime

    from harness.run.calibrate import calibrate, update_quarantine
    from harness.run.lifecycle import RunOptions

    options = RunOptions(
        config_dir=config_dir,
        runs_dir=(args.runs_dir or root / "runs").resolve(),
        credentials=root / "secrets" / "credentials.txt",
        run_id=args.run_id or "calibrate-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
        markexpr=args.grid,
        image_namespace=args.image_namespace,
        dataset_source=args.dataset_source,
        argv=tuple(sys.argv),
    )
    wanted = [i.strip() for i in args.instances.split(",") if i.strip()] if args.instances else None
    run, verdicts = calibrate(options, args.repeats, instances=wanted)
    lines = [v.line() for v in verdicts] + [f"evidence run: {run.paths.root}"]
    if not args.no_quarantine_update:
        kept = update_quarantine(config_dir / "quarantine.yaml", verdicts, run)
        lines.append(f"quarantine: {len(kept)} instance(s) in {config_dir / 'quarantine.yaml'}")
    return "\n".join(lines), int(any(v.verdict == "error" for v in verdicts))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    root = project_root()
    config_dir = (args.config or root / "config").resolve()
    try:
        if args.command == "dataset":
            out = _dataset(args, root, config_dir)
        elif args.command == "images" and args.action == "pull":
            out, code = _images_pull(args, root, config_dir)
            print(out)
            return code
        elif args.command == "images" and args.action == "prune":
            out = _images_prune(args, config_dir)
        elif args.command == "images":
            out = _images(args)
        elif args.command == "models":
            out = _models(args, config_dir)
        elif args.command == "gates":
            out, code = _gates(args, config_dir)
            print(out)
            return code
        elif args.command == "calibrate":
            out, code = _calibrate(args, root, config_dir)
            print(out)
            return code
        elif args.command == "compare":
            out = _compare(args)
        elif args.command == "merge":
            out = _merge(args, config_dir)
        elif args.command == "costs":
            out = _costs(args)
        else:
            out = _leaderboard(args, config_dir)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0
