"""SWE-bench Lite rows: the lock file, the offline snapshot, and loading a split from either source.

`config/dataset.lock` records which Hugging Face dataset and revision the harness trusts, and, per split,
the snapshot file (relative to the project root), its row count and a content fingerprint over the 12
classic columns. The fingerprint is the offline truth: rows that do not match it are refused, whether
they come from the committed snapshot or from Hugging Face. `python -m harness dataset verify` checks the
snapshot offline; `python -m harness dataset lock --revision REV` (online) re-locks deliberately.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.errors import HarnessError, one_line

# The 12 classic SWE-bench columns, in Hugging Face order.
# fmt: off
CLASSIC_FIELDS: tuple[str, ...] = (
    "repo", "instance_id", "base_commit", "patch", "test_patch", "problem_statement", "hints_text",
    "created_at", "version", "FAIL_TO_PASS", "PASS_TO_PASS", "environment_setup_commit",
)
# fmt: on
LOCK_RELPATH = Path("config/dataset.lock")
RELOCK_HINT = "run `python -m harness dataset lock --revision REV` to re-lock deliberately"
_JSON_LIST_FIELDS = ("FAIL_TO_PASS", "PASS_TO_PASS")
_OFFLINE_ENV = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_LOCK_HEADER = (
    "# SWE-bench Lite dataset lock: the HF revision and the row content (fingerprints) the harness trusts.\n"
    "# Check offline: `python -m harness dataset verify`. Regenerate (online, rewrites the snapshot files):\n"
    "# `python -m harness dataset lock --revision REV`. Fingerprint: see harness.infra.dataset.canonical_fingerprint.\n"
)


def canonical_fingerprint(rows: Iterable[dict]) -> str:
    """sha256 over the classic fields of `rows`, sorted by instance_id, one compact sorted-key JSON line each."""
    digest = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r["instance_id"]):
        line = json.dumps(
            {k: row[k] for k in CLASSIC_FIELDS}, sort_keys=True, ensure_ascii=False, separators=(",", ":")
        )
        digest.update((line + "\n").encode("utf-8"))
    return "sha256:" + digest.hexdigest()


class SplitLock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str
    rows: int = Field(ge=0)
    fingerprint: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class DatasetLock(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hf_repo: str
    revision: str
    revision_verified: bool
    retrieved: str
    snapshot_note: str = ""
    splits: dict[str, SplitLock]

    @field_validator("retrieved", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, dt.date):  # YAML reads an unquoted 2026-11-25 as a date
            return value.isoformat()
        if isinstance(value, str):
            dt.date.fromisoformat(value)  # ValueError -> validation error
        return value


@dataclass
class LoadedSplit:
    rows: dict[str, dict]  # instance_id -> row (classic fields), in source order
    source: str  # "snapshot" or "hf"
    detail: str  # one line: where the rows came from and why


def load_lock(path: Path) -> DatasetLock:
    path = Path(path)
    if not path.is_file():
        raise HarnessError(
            f"dataset lock {path} not found; restore it from git (`git checkout -- {LOCK_RELPATH}`) "
            "or create it with `python -m harness dataset lock --revision REV`"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise HarnessError(f"dataset lock {path} is not UTF-8 text; restore it from git") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise HarnessError(
            f"dataset lock {path} is not valid YAML{where} ({one_line(problem, None)}); fix it or restore it from git"
        ) from exc
    if not isinstance(data, dict):
        raise HarnessError(f"dataset lock {path} must be a YAML mapping; fix it or restore it from git")
    try:
        return DatasetLock.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {one_line(err['msg'], None)}"
            for err in exc.errors()
        )
        raise HarnessError(
            f"dataset lock {path} is invalid ({problems}); fix it or restore it from git"
        ) from exc


def write_lock(lock: DatasetLock, path: Path) -> None:
    body = yaml.safe_dump(lock.model_dump(), sort_keys=False, allow_unicode=True, width=100)
    _write_atomic(Path(path), _LOCK_HEADER + body)


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _split_lock(lock: DatasetLock, split: str) -> SplitLock:
    if split not in lock.splits:
        known = ", ".join(sorted(lock.splits)) or "none"
        raise HarnessError(f"unknown dataset split {split!r}; the lock has: {known}")
    return lock.splits[split]


def _snapshot_lines(lock: DatasetLock, split: str, root: Path) -> tuple[Path, list[str]]:
    entry = _split_lock(lock, split)
    path = Path(root) / entry.file
    if not path.is_file():
        raise HarnessError(
            f"dataset snapshot {entry.file} (split {split}) is missing; restore it from git "
            f"(`git checkout -- {entry.file}`) and run `python -m harness dataset verify`"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise HarnessError(
            f"dataset snapshot {entry.file} is not UTF-8 (byte {exc.start}); restore it from git (`git checkout -- {entry.file}`)"
        ) from None
    return path, [line for line in text.splitlines() if line.strip()]


def read_snapshot(lock: DatasetLock, split: str, root: Path) -> list[dict]:
    path, lines = _snapshot_lines(lock, split, root)
    rows: list[dict] = []
    for number, line in enumerate(lines, start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise HarnessError(
                f"dataset snapshot {path} line {number} is not JSON ({exc.msg}); restore it from git"
            ) from exc
        if missing := [k for k in CLASSIC_FIELDS if not isinstance(row, dict) or k not in row]:
            raise HarnessError(
                f"dataset snapshot {path} line {number} lacks {', '.join(missing)}; restore it from git"
            )
        rows.append(row)
    return rows


def snapshot_instance_ids(lock: DatasetLock, split: str, root: Path) -> list[str]:
    """Instance ids of a split in file order; no fingerprint check (cheap enough for pytest collection)."""
    path, lines = _snapshot_lines(lock, split, root)
    ids = []
    for number, line in enumerate(lines, 1):
        try:
            ids.append(json.loads(line)["instance_id"])
        except (ValueError, KeyError, TypeError):
            raise HarnessError(
                f"dataset snapshot {path} row {number} is not a SWE-bench row; restore it from git"
            ) from None
    return ids


def verify_snapshot(lock: DatasetLock, root: Path) -> list[str]:
    """One message per problem found in the snapshot files; an empty list means they match the lock."""
    problems: list[str] = []
    for split, entry in lock.splits.items():
        try:
            rows = read_snapshot(lock, split, root)
        except HarnessError as exc:
            problems.append(f"{split}: {exc}")
            continue
        if len(rows) != entry.rows:
            problems.append(f"{split}: {entry.file} has {len(rows)} rows, lock says {entry.rows}")
        ids = [r["instance_id"] for r in rows]
        if len(set(ids)) != len(ids):
            problems.append(f"{split}: {entry.file} has {len(ids) - len(set(ids))} duplicate instance ids")
        actual = canonical_fingerprint(rows)
        if actual != entry.fingerprint:
            problems.append(f"{split}: fingerprint mismatch: lock has {entry.fingerprint}, data has {actual}")
    return problems


def _check_fingerprint(lock: DatasetLock, split: str, rows: list[dict]) -> None:
    expected = _split_lock(lock, split).fingerprint
    actual = canonical_fingerprint(rows)
    if actual != expected:
        raise HarnessError(
            f"dataset {split} fingerprint mismatch: lock has {expected}, data has {actual}; {RELOCK_HINT}"
        )


def _to_classic(row: dict) -> dict:
    if missing := [k for k in CLASSIC_FIELDS if k not in row]:
        raise HarnessError(f"dataset row {row.get('instance_id', '?')} lacks {', '.join(missing)}")
    out = {k: row[k] for k in CLASSIC_FIELDS}
    for key in _JSON_LIST_FIELDS:
        if isinstance(out[key], list):
            out[key] = json.dumps(out[key])  # HF stores these as JSON strings with default separators
    return out


def _load_hf_rows(hf_repo: str, split: str, revision: str) -> list[dict]:
    import datasets  # slow import: only when Hugging Face is actually used

    loaded = datasets.load_dataset(hf_repo, split=split, revision=revision)
    return [_to_classic(dict(row)) for row in loaded]


def _offline_reason() -> str | None:
    for name in _OFFLINE_ENV:
        value = os.environ.get(name, "")
        if value.strip().lower() in ("1", "true", "yes", "on"):
            return f"{name}={value}"
    return None


def _rows_by_id(rows: list[dict]) -> dict[str, dict]:
    return {row["instance_id"]: row for row in rows}


def load_split(
    lock: DatasetLock, split: str, root: Path, source: Literal["auto", "snapshot", "hf"] = "auto"
) -> LoadedSplit:
    """Rows of one split from the snapshot or Hugging Face; a fingerprint mismatch always raises HarnessError."""
    entry = _split_lock(lock, split)
    at = f"{lock.hf_repo}@{lock.revision[:12]}"
    if source not in ("auto", "snapshot", "hf"):
        raise HarnessError(f"unknown dataset source {source!r}; use auto, snapshot or hf")
    reason = ""
    if source in ("auto", "hf"):
        offline = _offline_reason() if source == "auto" else None
        if offline:
            reason = f"{offline} set"
        else:
            try:
                rows = _load_hf_rows(lock.hf_repo, split, lock.revision)
            except Exception as exc:
                if source == "hf":
                    raise HarnessError(
                        f"could not load {at} split {split} from Hugging Face "
                        f"({type(exc).__name__}: {one_line(exc, None)}); check network access or use the snapshot"
                    ) from exc
                reason = f"Hugging Face failed ({type(exc).__name__}: {one_line(exc, 200)})"
            else:
                _check_fingerprint(lock, split, rows)
                return LoadedSplit(
                    _rows_by_id(rows), "hf", f"{at} split {split}: {len(rows)} rows, fingerprint ok"
                )
    rows = read_snapshot(lock, split, root)
    _check_fingerprint(lock, split, rows)
    detail = f"snapshot {entry.file}: {len(rows)} rows, fingerprint ok"
    return LoadedSplit(_rows_by_id(rows), "snapshot", f"{detail} ({reason})" if reason else detail)


def verify_command(root: Path, lock_path: Path) -> str:
    lock = load_lock(lock_path)
    problems = verify_snapshot(lock, root)
    if problems:
        raise HarnessError(
            f"dataset snapshot does not match {lock_path}: {' | '.join(one_line(p, None) for p in problems)}; "
            f"restore the files from git, or {RELOCK_HINT}"
        )
    splits = ", ".join(f"{name} {entry.rows} rows {entry.fingerprint}" for name, entry in lock.splits.items())
    verified = (
        "verified online" if lock.revision_verified else "NOT verified online (rows match the fingerprints)"
    )
    return f"dataset OK: {splits}; {lock.hf_repo} revision {lock.revision} {verified}"


def lock_command(root: Path, lock_path: Path, revision: str) -> str:
    """Online re-lock: load every split at `revision`, then rewrite snapshot files and lock (all or nothing)."""
    lock = load_lock(lock_path)
    revision = revision.strip()
    if not revision:
        raise HarnessError("dataset lock needs --revision REV (a Hugging Face commit sha or tag)")
    loaded: dict[str, list[dict]] = {}
    for split in lock.splits:
        try:
            loaded[split] = _load_hf_rows(lock.hf_repo, split, revision)
        except HarnessError as exc:
            raise HarnessError(f"{exc}; the lock and snapshot were left unchanged") from exc
        except Exception as exc:
            raise HarnessError(
                f"could not load {lock.hf_repo}@{revision} split {split} from Hugging Face "
                f"({type(exc).__name__}: {one_line(exc, 200)}); the lock and snapshot were left unchanged, "
                "retry with network access"
            ) from exc
    new_splits: dict[str, SplitLock] = {}
    for split, rows in loaded.items():
        entry = lock.splits[split]
        _write_atomic(Path(root) / entry.file, "".join(json.dumps(row) + "\n" for row in rows))
        new_splits[split] = SplitLock(
            file=entry.file, rows=len(rows), fingerprint=canonical_fingerprint(rows)
        )
    new_lock = lock.model_copy(
        update={
            "revision": revision,
            "revision_verified": True,
            "retrieved": dt.date.today().isoformat(),
            "snapshot_note": f"rows loaded from {lock.hf_repo} at revision {revision} by `harness dataset lock`",
            "splits": new_splits,
        }
    )
    write_lock(new_lock, lock_path)
    splits = ", ".join(f"{name} {s.rows} rows {s.fingerprint}" for name, s in new_splits.items())
    return f"dataset locked: {lock.hf_repo}@{revision}: {splits}; review the diff and commit it"
