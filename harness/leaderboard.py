"""Leaderboard v0 from CaseRecords: per model, cases, resolved, resolve rate, unresolved, errors, skipped.

Records are the truth; the CSV files and the terminal table are views of them. `runs/leaderboard.csv`
concatenates every run's leaderboard, each row naming its run_id.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from harness.records import CaseRecord, RunPaths, load_records

COLUMNS_V0 = ["run_id", "model", "cases", "resolved", "resolve_rate", "unresolved", "errors", "skipped"]


def leaderboard_rows(records: Iterable[CaseRecord]) -> list[dict[str, object]]:
    """One row per model, best resolve rate first. resolve_rate = resolved / all cases of the model."""
    per_model: dict[str, dict[str, object]] = {}
    for rec in records:
        row = per_model.setdefault(
            rec.model_id,
            {
                "run_id": rec.run_id,
                "model": rec.model_id,
                "cases": 0,
                "resolved": 0,
                "unresolved": 0,
                "errors": 0,
                "skipped": 0,
            },
        )
        row["cases"] = int(row["cases"]) + 1  # type: ignore[call-overload]
        key = {"resolved": "resolved", "unresolved": "unresolved", "error": "errors", "skipped": "skipped"}[
            rec.outcome
        ]
        row[key] = int(row[key]) + 1  # type: ignore[call-overload]
    rows = []
    for row in per_model.values():
        cases = int(row["cases"])  # type: ignore[call-overload]
        row["resolve_rate"] = round(int(row["resolved"]) / cases, 4) if cases else 0.0  # type: ignore[call-overload]
        rows.append({c: row[c] for c in COLUMNS_V0})
    return sorted(rows, key=lambda r: (-float(r["resolve_rate"]), str(r["model"])))  # type: ignore[arg-type]


def write_csv(path: Path, rows: list[dict[str, object]], columns: list[str] = COLUMNS_V0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def build_leaderboard(paths: RunPaths) -> list[dict[str, object]]:
    """Rebuild runs/<run_id>/leaderboard.csv from the run's records, then runs/leaderboard.csv across runs."""
    rows = leaderboard_rows(load_records(paths))
    write_csv(paths.leaderboard_csv, rows)
    write_all_runs(paths.runs_dir)
    return rows


def write_all_runs(runs_dir: Path) -> Path:
    combined: list[dict[str, object]] = []
    for csv_path in sorted(runs_dir.glob("*/leaderboard.csv")):
        with csv_path.open(newline="") as f:
            combined.extend(csv.DictReader(f))
    out = runs_dir / "leaderboard.csv"
    write_csv(out, combined)
    return out


def format_table(rows: list[dict[str, object]]) -> str:
    """A plain-text table for the terminal summary."""
    headers = ["model", "cases", "resolved", "resolve_rate", "unresolved", "errors", "skipped"]
    cells = [[str(r[h]) if h != "resolve_rate" else f"{float(r[h]):.1%}" for h in headers] for r in rows]  # type: ignore[arg-type]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)
