"""`python -m harness merge RUN... --into RUN`: join the run folders of a sharded grid into one run.

Records, artifacts (set-aside tries included) and a manifest naming its parts are copied into a new
run folder; predictions, the leaderboard (CSV + HTML) and the gates are then rebuilt from the merged
records by the same functions as `python -m harness leaderboard` (harness.cli). Each merged record
takes the merged run's id (the leaderboard and predictions name it); the manifest lists which part,
shard and original run every case came from.

Refused, with one line: a case recorded by two parts with different outcomes (outcome, class or patch
differ), parts made with different configs (config hash), a part with unreadable records or with
cases that were running when its process died, and a target folder that already has records.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.infra.secrets import redact_json
from harness.results.records import (
    CaseRecord,
    RunPaths,
    load_records,
    stale_markers,
    write_json_atomic,
)


@dataclass
class MergeResult:
    paths: RunPaths
    records: list[CaseRecord]
    parts: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    """Cases recorded identically by more than one part (kept once)."""


def _same(a: CaseRecord, b: CaseRecord) -> bool:
    return (a.outcome, a.outcome_class, a.patch_sha256) == (b.outcome, b.outcome_class, b.patch_sha256)


def _part_records(part: RunPaths) -> list[CaseRecord]:
    unreadable: list[Path] = []
    records = load_records(part, unreadable)
    if unreadable:
        raise HarnessError(
            f"{unreadable[0]}: not a readable record; repair or move it aside, then merge again"
        )
    if stale := stale_markers(part):
        raise HarnessError(
            f"run {part.run_id} has {len(stale)} case(s) that were running when its process died ({stale[0]}, ...); "
            f"finish it with --resume {part.run_id} first"
        )
    return records


def _manifest(paths: RunPaths) -> dict[str, Any]:
    return json.loads(paths.manifest.read_text()) if paths.manifest.is_file() else {}


def _labels(parts: list[RunPaths]) -> list[str]:
    """How messages name each part: its run id, or its folder when shards share a run id (one ledger run)."""
    ids = [p.run_id for p in parts]
    return [p.run_id if ids.count(p.run_id) == 1 else str(p.root) for p in parts]


def join_records(parts: list[RunPaths]) -> tuple[dict[str, tuple[CaseRecord, int]], int]:
    """Every case once, with the index of the part it comes from; parts that disagree are a HarnessError."""
    labels = _labels(parts)
    chosen: dict[str, tuple[CaseRecord, int]] = {}
    config_hashes: dict[str, str] = {}
    duplicates = 0
    for index, part in enumerate(parts):
        for rec in _part_records(part):
            if rec.config_hash:
                config_hashes.setdefault(rec.config_hash, labels[index])
            if rec.case_id not in chosen:
                chosen[rec.case_id] = (rec, index)
                continue
            first, where = chosen[rec.case_id]
            if not _same(first, rec):
                raise HarnessError(
                    f"{rec.case_id}: run {labels[where]} recorded {first.outcome} ({first.outcome_class}) but run "
                    f"{labels[index]} recorded {rec.outcome} ({rec.outcome_class}); merge refuses conflicting "
                    "records: leave one of the runs out or re-run the case"
                )
            duplicates += 1
    if len(config_hashes) > 1:
        (h1, r1), (h2, r2) = list(config_hashes.items())[:2]
        raise HarnessError(
            f"runs {r1} and {r2} were made with different configs ({h1[:19]} vs {h2[:19]}); "
            "merge only the shards of one grid and config"
        )
    return chosen, duplicates


SET_ASIDE = re.compile(r"^(?P<case>.+)\.(infra-\d+|interrupted)-\d+$")
"""Earlier tries kept next to a case's artifacts (harness.run.case.set_aside)."""


def _artifact_dirs(part: RunPaths) -> dict[str, list[str]]:
    """Case id -> its artifact folders in `part` (its own and those set aside), listed once per part."""
    found: dict[str, list[str]] = {}
    if part.artifacts.is_dir():
        for entry in os.scandir(part.artifacts):
            if entry.is_dir():
                match = SET_ASIDE.match(entry.name)
                found.setdefault(match["case"] if match else entry.name, []).append(entry.name)
    return found


def _write_copy(into: RunPaths, record: CaseRecord) -> None:
    """A merged record: redacted as write_record does; not fsynced one by one (merge_runs syncs once, then
    writes the manifest last, so a merged folder with a manifest is complete)."""
    path = into.record(record.case_id)
    path.write_text(json.dumps(redact_json(record.model_dump(mode="json")), indent=2) + "\n")


def _part_entry(part: RunPaths, case_ids: list[str]) -> dict[str, Any]:
    manifest = _manifest(part)
    keep = ("started_at", "finished_at", "wall_s", "argv", "host", "shard", "grids", "budget")
    return {
        "run_id": part.run_id,
        "path": str(part.root),
        **{k: manifest[k] for k in keep if k in manifest},
        "cases": len(case_ids),
        "case_ids": sorted(case_ids),
    }


def merge_runs(parts: list[RunPaths], into: RunPaths) -> MergeResult:
    """Join `parts` into the new run folder `into` (records, artifacts, manifest); views are the caller's."""
    roots = [p.root.resolve() for p in parts]
    if len(set(roots)) != len(roots):
        raise HarnessError("the same run folder is named twice; name each shard's run once")
    if into.root.resolve() in roots:
        raise HarnessError(f"--into {into.root}: is one of the runs being merged; name a new run folder")
    if into.cases.is_dir() and any(into.cases.glob("*.json")):
        raise HarnessError(f"--into {into.root}: already has records; name a new run folder")
    chosen, duplicates = join_records(parts)
    merged: list[CaseRecord] = []
    by_part: list[list[str]] = [[] for _ in parts]
    artifacts = [_artifact_dirs(p) for p in parts]
    into.cases.mkdir(parents=True, exist_ok=True)
    for case_id in sorted(chosen):
        rec, index = chosen[case_id]
        for name in artifacts[index].get(case_id, []):
            shutil.copytree(parts[index].artifacts / name, into.artifacts / name, dirs_exist_ok=True)
        merged.append(rec.model_copy(update={"run_id": into.run_id}))
        _write_copy(into, merged[-1])
        by_part[index].append(case_id)
    os.sync()
    entries = [_part_entry(p, ids) for p, ids in zip(parts, by_part, strict=True)]
    first = _manifest(parts[0])
    outcomes: dict[str, int] = {}
    for rec in merged:
        outcomes[rec.outcome] = outcomes.get(rec.outcome, 0) + 1
    write_json_atomic(
        into.manifest,
        {
            "run_id": into.run_id,
            "merged_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **{k: first[k] for k in ("versions", "config_dir", "config_hash", "dataset_lock") if k in first},
            "grids": sorted({g for e in entries for g in e.get("grids", [])}),
            "cases": len(merged),
            "outcomes": outcomes,
            "duplicate_cases": duplicates,
            "parts": entries,
        },
    )
    return MergeResult(into, merged, entries, duplicates)


def add_to_manifest(paths: RunPaths, **fields: Any) -> None:
    manifest = _manifest(paths)
    manifest.update(fields)
    write_json_atomic(paths.manifest, manifest)
