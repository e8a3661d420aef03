"""The end of a run, in the controller: predictions, leaderboard, gates, manifest, redaction.

Kept out of the pytest plugin so it can be tested and re-run without pytest
(`python -m harness leaderboard` / `gates` call the same functions).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.config import HarnessConfig
from harness.infra.containers import Runtime, remove_labelled_containers
from harness.infra.secrets import redact_tree
from harness.outcomes import Outcome
from harness.results.gates import GateResult, evaluate_gates
from harness.results.leaderboard import build_leaderboard
from harness.results.records import CaseRecord, RunPaths, load_records, write_predictions
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
    compare_to: list[CaseRecord] | None = None,
    budget: dict | None = None,
    runtime: Runtime | None = None,
) -> RunSummary:
    leftovers = remove_labelled_containers(runtime, paths.run_id) if runtime else 0
    unreadable: list[Path] = []
    records = load_records(paths, unreadable)
    write_predictions(paths, records)
    rows = build_leaderboard(paths, records=records, columns_file=cfg.dir / "leaderboard_columns.yaml")
    gates = evaluate_gates(
        cfg.gates,
        records,
        active_grids=active_grids,
        cpu_samples=cpu_samples,
        compare_to=compare_to,
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
        },
    )
    redact_tree(paths.root)
    skips: dict[str, int] = {}
    for rec in records:
        if rec.outcome == Outcome.SKIPPED:
            skips[rec.outcome_class] = skips.get(rec.outcome_class, 0) + 1
    return RunSummary(records, rows, gates, skips, unreadable)
