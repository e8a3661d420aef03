"""harness.infra.dataset: lock file, snapshot fingerprints, snapshot/HF loading and the verify/lock commands.

Hugging Face is unreachable here, so the HF path is exercised by replacing only `datasets.load_dataset`
with a function that serves rows built from the committed snapshot.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import datasets
import pytest

from harness.errors import HarnessError
from harness.infra.dataset import (
    CLASSIC_FIELDS,
    LOCK_RELPATH,
    DatasetLock,
    SplitLock,
    canonical_fingerprint,
    load_lock,
    load_split,
    lock_command,
    read_snapshot,
    snapshot_instance_ids,
    verify_command,
    verify_snapshot,
    write_lock,
)

ROOT = Path(__file__).resolve().parents[1]
OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")


@pytest.fixture(scope="module")
def lock() -> DatasetLock:
    return load_lock(ROOT / LOCK_RELPATH)


@pytest.fixture(scope="module")
def snapshot_rows(lock: DatasetLock) -> dict[str, list[dict]]:
    return {split: read_snapshot(lock, split, ROOT) for split in lock.splits}


@pytest.fixture
def project(tmp_path: Path, lock: DatasetLock) -> Path:
    """A tmp copy of the lock and the snapshot files, laid out like the project root."""
    for rel in [LOCK_RELPATH, *(Path(s.file) for s in lock.splits.values())]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / rel, tmp_path / rel)
    return tmp_path


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OFFLINE_VARS:
        monkeypatch.delenv(name, raising=False)


def hf_like(rows: list[dict]) -> list[dict]:
    """Rows as `datasets` may hand them over: test lists decoded, plus a non-classic column."""
    out = []
    for row in rows:
        row = dict(
            row, FAIL_TO_PASS=json.loads(row["FAIL_TO_PASS"]), PASS_TO_PASS=json.loads(row["PASS_TO_PASS"])
        )
        out.append({**row, "extra_column": 1})
    return out


def fake_load_dataset(
    snapshot_rows: dict[str, list[dict]], calls: list | None = None, fail_on: str | None = None
):
    def load_dataset(path: str, split: str, revision: str) -> list[dict]:
        if calls is not None:
            calls.append((path, split, revision))
        if split == fail_on:
            raise ConnectionError(
                "Couldn't reach 'SWE-bench/SWE-bench_Lite' on the Hub (LocalEntryNotFoundError)"
            )
        return hf_like(snapshot_rows[split])

    return load_dataset


def tamper(project: Path, lock: DatasetLock, split: str = "dev") -> None:
    path = project / lock.splits[split].file
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    row = json.loads(lines[0])
    row["problem_statement"] += " (edited)"
    lines[0] = json.dumps(row) + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def snapshot_bytes(project: Path, lock: DatasetLock) -> dict[str, bytes]:
    files = [LOCK_RELPATH, *(Path(s.file) for s in lock.splits.values())]
    return {str(rel): (project / rel).read_bytes() for rel in files}


# --- fingerprint --------------------------------------------------------------------------------------


def test_fingerprint_is_stable_and_ignores_order_and_extra_keys(snapshot_rows):
    rows = snapshot_rows["dev"]
    fp = canonical_fingerprint(rows)
    assert fp.startswith("sha256:") and len(fp) == len("sha256:") + 64
    assert canonical_fingerprint(list(reversed(rows))) == fp
    assert canonical_fingerprint([{**r, "extra": "x"} for r in rows]) == fp


CANONICAL_TEXT = (  # what the lock's fingerprint hashes, written out by hand: sorted rows, sorted keys, UTF-8
    '{"FAIL_TO_PASS":"","PASS_TO_PASS":"","base_commit":"","created_at":"","environment_setup_commit":"",'
    '"hints_text":"","instance_id":"a__b-1","patch":"","problem_statement":"\u00e9","repo":"","test_patch":"",'
    '"version":""}\n'
    '{"FAIL_TO_PASS":"","PASS_TO_PASS":"","base_commit":"","created_at":"","environment_setup_commit":"",'
    '"hints_text":"","instance_id":"z__y-2","patch":"","problem_statement":"tab\\tquote\\"","repo":"",'
    '"test_patch":"","version":""}\n'
)


def test_fingerprint_known_value():
    def row(instance_id: str, statement: str) -> dict:
        return {k: "" for k in CLASSIC_FIELDS} | {"instance_id": instance_id, "problem_statement": statement}

    rows = [row("z__y-2", 'tab\tquote"') | {"not_classic": 1}, row("a__b-1", "\u00e9")]
    expected = "sha256:553e076ca4add8625d8b8a428a1a661fda310df496e011fd98b3fcb300b2fdef"
    assert "sha256:" + hashlib.sha256(CANONICAL_TEXT.encode("utf-8")).hexdigest() == expected
    assert canonical_fingerprint(rows) == expected


@pytest.mark.parametrize("field", CLASSIC_FIELDS)
def test_fingerprint_changes_with_any_classic_field(snapshot_rows, field):
    rows = [dict(r) for r in snapshot_rows["dev"]]
    before = canonical_fingerprint(rows)
    rows[3][field] = rows[3][field] + "x"
    assert canonical_fingerprint(rows) != before


# --- lock file ----------------------------------------------------------------------------------------


def test_committed_lock_matches_snapshot(lock, snapshot_rows):
    assert lock.hf_repo == "SWE-bench/SWE-bench_Lite"
    assert lock.revision == "6ec7bb89b9342f664a54a6e0a6ea6501d3437cc2"
    assert lock.revision_verified is False
    assert "PROVENANCE.md" in lock.snapshot_note
    assert {s: e.rows for s, e in lock.splits.items()} == {"dev": 23, "test": 300}
    for split, entry in lock.splits.items():
        assert entry.fingerprint == canonical_fingerprint(snapshot_rows[split])


def test_write_then_load_roundtrip(tmp_path, lock):
    path = tmp_path / "dataset.lock"
    write_lock(lock, path)
    text = path.read_text()
    assert text.startswith("#") and "python -m harness dataset lock --revision REV" in text
    assert load_lock(path) == lock


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda t: t + "surprise: 1\n", "surprise"),
        (lambda t: t.replace("revision_verified: false", "revision_verified: [1, 2]"), "revision_verified"),
        (lambda t: t.replace("rows: 23", "rows: many"), "rows"),
        (lambda t: t.replace("retrieved: '2026-11-25'", "retrieved: yesterday"), "retrieved"),
        (lambda t: t + "splits: [unclosed\n", "not valid YAML"),
        (lambda t: "- just\n- a list\n", "mapping"),
    ],
)
def test_malformed_lock_is_one_line_harness_error(tmp_path, mutate, expected):
    path = tmp_path / "dataset.lock"
    path.write_text(mutate((ROOT / LOCK_RELPATH).read_text()))
    with pytest.raises(HarnessError) as info:
        load_lock(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and expected in message


def test_missing_lock_says_how_to_restore(tmp_path):
    with pytest.raises(HarnessError, match=r"not found; restore it from git") as info:
        load_lock(tmp_path / "nope.lock")
    assert "\n" not in str(info.value)


# --- snapshot -----------------------------------------------------------------------------------------


def test_verify_ok_on_real_snapshot(lock):
    assert verify_snapshot(lock, ROOT) == []
    summary = verify_command(ROOT, ROOT / LOCK_RELPATH)
    assert summary.startswith("dataset OK") and "\n" not in summary
    assert lock.splits["test"].fingerprint in summary and "NOT verified" in summary


def test_tampered_copy_is_refused_naming_both_hashes(project, lock):
    tamper(project, lock)
    actual = canonical_fingerprint(read_snapshot(lock, "dev", project))
    expected = lock.splits["dev"].fingerprint
    problems = verify_snapshot(lock, project)
    assert len(problems) == 1 and expected in problems[0] and actual in problems[0]
    with pytest.raises(HarnessError) as info:
        load_split(lock, "dev", project, source="snapshot")
    assert (
        expected in str(info.value)
        and actual in str(info.value)
        and "dataset lock --revision" in str(info.value)
    )
    with pytest.raises(HarnessError, match="fingerprint mismatch") as info:
        verify_command(project, project / LOCK_RELPATH)
    assert "\n" not in str(info.value)


def test_verify_reports_missing_file_and_row_count(project, lock):
    (project / lock.splits["dev"].file).unlink()
    path = project / lock.splits["test"].file
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-1]))
    problems = verify_snapshot(lock, project)
    assert any("dev" in p and "missing" in p and "git checkout" in p for p in problems)
    assert any("299 rows, lock says 300" in p for p in problems)
    with pytest.raises(HarnessError, match="python -m harness dataset verify"):
        read_snapshot(lock, "dev", project)


def test_snapshot_instance_ids_and_unknown_split(lock):
    ids = snapshot_instance_ids(lock, "dev", ROOT)
    assert len(ids) == 23 and ids[0] == "sqlfluff__sqlfluff-1625"
    with pytest.raises(HarnessError, match="unknown dataset split 'train'"):
        snapshot_instance_ids(lock, "train", ROOT)


# --- load_split sources -------------------------------------------------------------------------------


@pytest.mark.parametrize("var", OFFLINE_VARS)
def test_auto_honours_offline_env(monkeypatch, lock, var):
    for other in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(other, raising=False)
    monkeypatch.setenv(var, "1")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("HF must not be called"))
    loaded = load_split(lock, "dev", ROOT)
    assert loaded.source == "snapshot" and var in loaded.detail and len(loaded.rows) == 23


def test_auto_falls_back_to_snapshot_when_hf_fails(monkeypatch, online, lock, snapshot_rows):
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(snapshot_rows, fail_on="dev"))
    loaded = load_split(lock, "dev", ROOT)
    assert loaded.source == "snapshot" and "ConnectionError" in loaded.detail and "\n" not in loaded.detail


def test_hf_source_converts_rows_and_checks_fingerprint(monkeypatch, online, lock, snapshot_rows):
    calls: list = []
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(snapshot_rows, calls))
    for source in ("hf", "auto"):
        loaded = load_split(lock, "test", ROOT, source=source)
        assert loaded.source == "hf"
        assert list(loaded.rows.values()) == snapshot_rows["test"]
    assert calls[0] == ("SWE-bench/SWE-bench_Lite", "test", lock.revision)


def test_hf_mismatch_refuses_even_in_auto(monkeypatch, online, lock, snapshot_rows):
    changed = {"dev": [dict(r) for r in snapshot_rows["dev"]]}
    changed["dev"][0]["version"] = "9.9"
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(changed))
    with pytest.raises(HarnessError, match="dataset dev fingerprint mismatch: lock has sha256:") as info:
        load_split(lock, "dev", ROOT, source="auto")
    assert lock.splits["dev"].fingerprint in str(info.value)
    assert canonical_fingerprint(changed["dev"]) in str(info.value)


def test_hf_source_unreachable_is_harness_error(monkeypatch, online, lock, snapshot_rows):
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(snapshot_rows, fail_on="dev"))
    with pytest.raises(HarnessError, match="could not load SWE-bench/SWE-bench_Lite"):
        load_split(lock, "dev", ROOT, source="hf")


# --- lock_command -------------------------------------------------------------------------------------


def test_lock_command_rewrites_lock_in_tmp_project(monkeypatch, project, lock, snapshot_rows):
    before = snapshot_bytes(project, lock)
    changed = {"dev": snapshot_rows["dev"][:-1], "test": snapshot_rows["test"]}
    calls: list = []
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(changed, calls))
    summary = lock_command(project, project / LOCK_RELPATH, "0123abcd")
    assert "0123abcd" in summary and "\n" not in summary
    assert {c[2] for c in calls} == {"0123abcd"}
    new = load_lock(project / LOCK_RELPATH)
    assert new.revision == "0123abcd" and new.revision_verified is True
    assert new.splits["dev"].rows == 22 and new.splits["dev"].fingerprint == canonical_fingerprint(
        changed["dev"]
    )
    assert new.splits["test"] == lock.splits["test"]
    after = snapshot_bytes(project, lock)
    assert after["data/swebench_lite/test.jsonl"] == before["data/swebench_lite/test.jsonl"]  # same bytes
    assert verify_snapshot(new, project) == []
    assert read_snapshot(new, "dev", project) == changed["dev"]


def test_lock_command_leaves_everything_unchanged_when_hf_fails(monkeypatch, project, lock, snapshot_rows):
    before = snapshot_bytes(project, lock)
    changed = {"dev": snapshot_rows["dev"][:-1], "test": snapshot_rows["test"]}
    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset(changed, fail_on="test"))
    with pytest.raises(HarnessError, match="left unchanged") as info:
        lock_command(project, project / LOCK_RELPATH, "0123abcd")
    assert "\n" not in str(info.value)
    assert snapshot_bytes(project, lock) == before
    assert sorted(p.name for p in (project / "data/swebench_lite").iterdir()) == ["dev.jsonl", "test.jsonl"]


def test_split_lock_rejects_bad_fingerprint():
    with pytest.raises(ValueError):
        SplitLock(file="x.jsonl", rows=1, fingerprint="md5:abc")
