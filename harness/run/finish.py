"""The end of a run, in the controller: predictions, leaderboard, gates, manifest, case pages, memo, redaction.

Kept out of the pytest plugin so it can be tested and re-run without pytest
(`python -m harness leaderboard` / `gates` call the same functions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig
from harness.errors import HarnessError
from harness.infra.containers import Runtime, remove_labelled_containers
from harness.infra.secrets import redact_tree
from harness.outcomes import Outcome
from harness.results.gates import GateResult, evaluate_gates, format_gates
from harness.results.leaderboard import build_leaderboard, format_table, quarantined_instances
from harness.results.records import CaseRecord, RunPaths, load_records, runs_lock, write_predictions
from harness.run.manifest import finish_manifest


@dataclass
class RunSummary:
    records: list[CaseRecord]
    rows: list[dict[str, Any]]
    gates: list[GateResult]
    skips: dict[str, int] = field(default_factory=dict)
    unreadable: list[Path] = field(default_factory=list)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if g.status == "failed"]


def load_compare_run(runs_dir: Path, run_id: str | None) -> list[CaseRecord] | None:
    if not run_id:
        return None
    path = Path(run_id)
    paths = RunPaths(path.parent, path.name) if path.is_dir() else RunPaths(runs_dir, run_id)
    return load_records(paths)


def finish_run(
    paths: RunPaths,
    cfg: HarnessConfig,
    *,
    active_grids: frozenset[str],
    cpu_samples: list[float],
    exitstatus: int,
    cpu_harness_samples: list[float] | None = None,
    compare_to: list[CaseRecord] | None = None,
    budget: dict | None = None,
    runtime: Runtime | None = None,
    compare_to_id: str | None = None,
) -> RunSummary:
    leftovers = remove_labelled_containers(runtime, paths.run_label) if runtime else 0
    unreadable: list[Path] = []
    records = load_records(paths, unreadable)
    write_predictions(paths, records)
    with runs_lock(paths.runs_dir):  # runs/leaderboard.csv is shared with other runs finishing now
        rows = build_leaderboard(paths, records=records, columns_file=cfg.dir / "leaderboard_columns.yaml")
    gates = evaluate_gates(
        cfg.gates,
        records,
        active_grids=active_grids,
        cpu_samples=cpu_samples,
        compare_to=compare_to,
        cpu_harness_samples=cpu_harness_samples,
    )
    finish_manifest(
        paths,
        records,
        cpu_samples,
        exitstatus=exitstatus,
        budget=budget,
        extra={
            "grids": sorted(active_grids),
            "gates": [asdict(g) for g in gates],
            "leftover_containers_removed": leftovers,
            "cpu_harness_samples": cpu_harness_samples or [],
            "images": record_images(records),
            "compare_to": compare_to_id,
        },
    )
    compare = (compare_to_id or "", compare_to) if compare_to is not None else None
    write_views(paths, cfg, records, compare)
    redact_tree(paths.root)  # what others wrote (SWE-agent, the evaluator); ours was redacted before writing
    skips: dict[str, int] = {}
    for rec in records:
        if rec.outcome == Outcome.SKIPPED:
            skips[rec.outcome_class] = skips.get(rec.outcome_class, 0) + 1
    return RunSummary(records, rows, gates, skips, unreadable)


def record_images(records: list[CaseRecord]) -> dict[str, list[str]]:
    """Instance image -> the digests its cases ran on (more than one: the image changed during the run)."""
    found: dict[str, set[str]] = {}
    for rec in records:
        if rec.image_digest:
            found.setdefault(rec.dataset.get("image", ""), set()).add(rec.image_digest)
    return {image: sorted(digests) for image, digests in sorted(found.items())}


def problem_statements(cfg: HarnessConfig, records: list[CaseRecord]) -> dict[str, str]:
    """Instance id -> problem statement, for the case pages: bundled fixtures, else the locked snapshot."""
    from harness.demo.fixtures import FIXTURES
    from harness.infra.dataset import load_lock, load_split

    found = {f.instance_id: f.problem_statement for f in FIXTURES}
    for split in sorted({r.split for r in records if r.split != "fixtures"}):
        try:
            rows = load_split(load_lock(cfg.lock_path), split, cfg.root, source="snapshot").rows
        except HarnessError:
            continue  # the pages fall back to the task given to the agent
        found |= {i: str(row.get("problem_statement", "")) for i, row in rows.items()}
    return found


def write_views(
    paths: RunPaths,
    cfg: HarnessConfig,
    records: list[CaseRecord],
    compare: tuple[str, list[CaseRecord]] | None = None,
) -> None:
    """A page per case, per instance and per repository, and the validation memo (memo.md and the first
    section of leaderboard.html, which must exist already); the manifest is read for gates and versions."""
    import json

    from harness.results.case_page import write_case_pages
    from harness.results.compare_pages import write_compare_pages
    from harness.results.memo import write_memo

    problems = problem_statements(cfg, records)
    write_case_pages(paths, records, problems)
    write_compare_pages(paths, records, problems)
    manifest = json.loads(paths.manifest.read_text()) if paths.manifest.is_file() else {}
    write_memo(paths, records, manifest, compare)


SKIP_HINTS = {
    "no-credentials": " - put the provider's key in secrets/credentials.txt (README: credentials)",
    "unavailable": " - the provider does not list the model; check `python -m harness models check`",
    "excluded": " - quarantined instances (below)",
    "budget": " - a call quota or USD cap was reached (config/model_catalog.yaml providers, sweagent.yaml budgets)",
}


def summary_lines(summary: RunSummary, paths: RunPaths, infra_errors: int) -> list[str]:
    """The leaderboard table, where the files are, the gates, skips, unreadable records, infra errors."""
    lines = [
        format_table(summary.rows),
        f"records: {paths.cases}  leaderboard: {paths.leaderboard_csv} (+ .html)",
    ]
    lines += format_gates([g for g in summary.gates if g.status != "not-applicable"])
    lines += [
        f"{n} case(s) skipped: {cls}" + SKIP_HINTS.get(cls, "") for cls, n in sorted(summary.skips.items())
    ]
    if quarantined := quarantined_instances(summary.records):
        lines.append(
            f"{len(quarantined)} quarantined instance(s), not in any rate (config/quarantine.yaml; "
            f"--include-quarantined runs them): {', '.join(quarantined)}"
        )
    lines += [f"unreadable record left in place (not counted): {path}" for path in summary.unreadable]
    if infra_errors:
        lines.append(
            f"{infra_errors} case(s) hit infrastructure errors (not the model's fault); "
            f"see the records, then re-run them with --resume {paths.run_id}"
        )
    return lines
