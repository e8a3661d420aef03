"""harness.results.records: atomic JSON writes, CaseRecord round trip, predictions, and runner.previous_record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from harness.results.records import (
    SCHEMA_VERSION,
    CaseRecord,
    RunPaths,
    Telemetry,
    load_records,
    sha256_text,
    write_json_atomic,
    write_predictions,
    write_record,
)
from harness.run.case import previous_record

PATCH = "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a = 1\n+a = 2\n"


def make_record(
    model_id: str = "kimi-k2-0905",
    instance_id: str = "sqlfluff__sqlfluff-1625",
    attempt: int = 1,
    outcome: str = "resolved",
    outcome_class: str | None = None,
    run_id: str = "run-1",
    patch: str = PATCH,
) -> CaseRecord:
    return CaseRecord(
        run_id=run_id,
        case_id=f"{model_id}-{instance_id}-a{attempt}",
        model_id=model_id,
        provider="chutes",
        litellm_id=f"chutes/{model_id}",
        instance_id=instance_id,
        repo=instance_id.split("__")[0],
        split="dev",
        attempt=attempt,
        agent_backend="mini",
        outcome=outcome,  # type: ignore[arg-type]
        outcome_class=outcome_class or outcome,
        patch=patch,
        patch_sha256=sha256_text(patch),
    )


def dir_names(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


# --- write_json_atomic ------------------------------------------------------------------------------


def test_write_json_atomic_creates_parents(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "rec.json"
    write_json_atomic(path, {"x": 1, "y": [1, 2]})
    assert json.loads(path.read_text()) == {"x": 1, "y": [1, 2]}
    assert path.read_text().endswith("}\n")
    assert dir_names(path.parent) == ["rec.json"]


def test_write_json_atomic_replaces(tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    write_json_atomic(path, {"v": 1})
    write_json_atomic(path, {"v": 2, "more": "x" * 1000})
    assert json.loads(path.read_text()) == {"v": 2, "more": "x" * 1000}
    assert dir_names(tmp_path) == ["rec.json"]


def test_write_json_atomic_failure_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "rec.json"
    write_json_atomic(path, {"v": 1})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="not JSON serializable"):
        # json.dump writes "{"v": 2, "bad": " to the temp file before it meets the object
        write_json_atomic(path, {"v": 2, "bad": object()})
    assert path.read_bytes() == before
    assert dir_names(tmp_path) == ["rec.json"]


def test_write_json_atomic_failure_without_old_file(tmp_path: Path) -> None:
    path = tmp_path / "new.json"
    with pytest.raises(TypeError):
        write_json_atomic(path, [1, {2, 3}])
    assert dir_names(tmp_path) == []


# --- CaseRecord --------------------------------------------------------------------------------------


def test_case_record_round_trip(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path / "runs", "run-1")
    rec = make_record(outcome="unresolved", outcome_class="patch-apply-failed").model_copy(
        update={
            "telemetry": Telemetry(calls=3, prompt_tokens=1200, cost_usd=None, latencies_s=[0.5, 1.25]),
            "tests_status": {"FAIL_TO_PASS": {"success": [], "failure": ["t1"]}},
            "errors": [{"stage": "evaluation", "error": "x", "traceback": ""}],
        }
    )
    path = write_record(paths, rec)
    assert path == tmp_path / "runs" / "run-1" / "cases" / "kimi-k2-0905-sqlfluff__sqlfluff-1625-a1.json"
    data = json.loads(path.read_text())
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["telemetry"]["cost_usd"] is None  # unknown cost stays unknown, not 0
    back = CaseRecord.model_validate_json(path.read_text())
    assert back == rec
    assert back.telemetry.latencies_s == [0.5, 1.25]
    assert not back.is_infra_error
    assert make_record(outcome="error", outcome_class="provider-error").is_infra_error


def test_case_record_rejects_unknown_fields_and_outcomes() -> None:
    data = make_record().model_dump()
    with pytest.raises(ValidationError):
        CaseRecord.model_validate({**data, "resolvd": True})
    with pytest.raises(ValidationError):
        CaseRecord.model_validate({**data, "outcome": "passed"})


def test_sha256_text() -> None:
    assert sha256_text("") == ""
    assert sha256_text("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_run_paths_layout(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "r1")
    assert paths.root == tmp_path / "r1"
    assert paths.manifest == tmp_path / "r1" / "manifest.json"
    assert paths.record("c") == tmp_path / "r1" / "cases" / "c.json"
    assert paths.case_artifacts("c") == tmp_path / "r1" / "artifacts" / "c"
    assert paths.leaderboard_csv == tmp_path / "r1" / "leaderboard.csv"
    assert paths.slots == tmp_path / "r1" / ".slots"


def test_load_records(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run-1")
    assert load_records(paths) == []
    recs = [
        make_record(attempt=2),
        make_record(attempt=1),
        make_record(model_id="empty", outcome="unresolved"),
    ]
    for rec in recs:
        write_record(paths, rec)
    (paths.cases / "x.json.corrupt").write_text("{")  # set aside by previous_record: not a record
    loaded = load_records(paths)
    assert [r.case_id for r in loaded] == [
        "empty-sqlfluff__sqlfluff-1625-a1",
        "kimi-k2-0905-sqlfluff__sqlfluff-1625-a1",
        "kimi-k2-0905-sqlfluff__sqlfluff-1625-a2",
    ]
    assert loaded[0] == recs[2]


# --- predictions -------------------------------------------------------------------------------------


def test_write_predictions(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run-1")
    records = [
        make_record("kimi-k2-0905", "pydicom__pydicom-1694", 2, "unresolved"),
        make_record("kimi-k2-0905", "pydicom__pydicom-1694", 1, "resolved"),
        make_record("kimi-k2-0905", "marshmallow-code__marshmallow-1359", 1, "resolved"),
        make_record("kimi-k2-0905", "pvlib__pvlib-python-1072", 1, "error", "provider-error"),
        make_record("glm-4.5", "pvlib__pvlib-python-1072", 1, "skipped", "budget"),
        make_record("empty", "pvlib__pvlib-python-1072", 1, "unresolved", "empty-patch", patch=""),
    ]
    written = write_predictions(paths, records)
    kimi_a1, kimi_a2 = (paths.predictions / "kimi-k2-0905" / f"attempt-{k}.jsonl" for k in (1, 2))
    assert written == [paths.predictions / "empty" / "attempt-1.jsonl", kimi_a1, kimi_a2]
    first = [json.loads(line) for line in kimi_a1.read_text().splitlines()]
    second = [json.loads(line) for line in kimi_a2.read_text().splitlines()]
    assert [p["instance_id"] for p in first] == [
        "marshmallow-code__marshmallow-1359",
        "pydicom__pydicom-1694",
    ]
    assert [(p["instance_id"], p["attempt"]) for p in second] == [("pydicom__pydicom-1694", 2)]
    for pred in first + second:
        assert pred["model_name_or_path"] == "kimi-k2-0905"
        assert pred["model_patch"] == PATCH
        assert pred["run_id"] == "run-1"
        assert pred["case_id"] == f"kimi-k2-0905-{pred['instance_id']}-a{pred['attempt']}"
    empty = [json.loads(line) for line in written[0].read_text().splitlines()]
    assert empty == [
        {
            "instance_id": "pvlib__pvlib-python-1072",
            "model_name_or_path": "empty",
            "model_patch": "",
            "attempt": 1,
            "case_id": "empty-pvlib__pvlib-python-1072-a1",
            "run_id": "run-1",
        }
    ]
    assert not (paths.predictions / "glm-4.5").exists()  # skipped only: no prediction


def test_every_predictions_file_lists_each_instance_at_most_once(tmp_path: Path) -> None:
    """The official CLI keys predictions by instance_id: one file per model and attempt keeps them all."""
    paths = RunPaths(tmp_path, "run-1")
    records = [make_record("m", f"repo__i-{i}", k, "resolved") for i in range(4) for k in (1, 2, 3)]
    written = write_predictions(paths, records)
    assert len(written) == 3
    for path in written:
        ids = [json.loads(line)["instance_id"] for line in path.read_text().splitlines()]
        assert sorted(ids) == [f"repo__i-{i}" for i in range(4)]


def test_write_predictions_nothing_to_write(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run-1")
    assert write_predictions(paths, [make_record(outcome="error", outcome_class="agent-crash")]) == []
    assert not paths.predictions.exists()


# --- previous_record (resume) --------------------------------------------------------------------------


def test_previous_record_missing(tmp_path: Path) -> None:
    assert previous_record(RunPaths(tmp_path, "run-1"), "nope-a1") is None


def test_previous_record_infra_error_is_rerun(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run-1")
    rec = make_record(outcome="error", outcome_class="container-error")
    write_record(paths, rec)
    assert previous_record(paths, rec.case_id) is None
    assert paths.record(rec.case_id).is_file()  # kept: the re-run overwrites it atomically


@pytest.mark.parametrize(
    ("outcome", "cls"),
    [("resolved", "resolved"), ("unresolved", "patch-apply-failed")],
)
def test_previous_record_model_outcome_is_kept(tmp_path: Path, outcome: str, cls: str) -> None:
    paths = RunPaths(tmp_path, "run-1")
    rec = make_record(outcome=outcome, outcome_class=cls)
    write_record(paths, rec)
    assert previous_record(paths, rec.case_id) == rec


def test_previous_record_skip_runs_again(tmp_path: Path) -> None:
    """A budget or credentials skip is not an outcome: a resumed run tries the case again."""
    paths = RunPaths(tmp_path, "run-1")
    rec = make_record(outcome="skipped", outcome_class="budget")
    write_record(paths, rec)
    assert previous_record(paths, rec.case_id) is None


@pytest.mark.parametrize(
    "content",
    [b'{"run_id": "run-1", "case_id": "c', b'{"not": "a record"}\n', b"\xff\xfe\x00garbage"],
    ids=["torn", "foreign", "binary"],
)
def test_previous_record_corrupt_is_set_aside(tmp_path: Path, content: bytes) -> None:
    paths = RunPaths(tmp_path, "run-1")
    path = paths.record("kimi-k2-0905-sqlfluff__sqlfluff-1625-a1")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    assert previous_record(paths, "kimi-k2-0905-sqlfluff__sqlfluff-1625-a1") is None
    assert not path.exists()
    (aside,) = paths.cases.glob(path.name + ".corrupt-*")
    assert aside.read_bytes() == content
    assert dir_names(paths.cases) == [aside.name]


def test_previous_record_second_corruption_keeps_first(tmp_path: Path) -> None:
    paths = RunPaths(tmp_path, "run-1")
    path = paths.record("c-a1")
    path.parent.mkdir(parents=True)
    path.write_text("first {")
    assert previous_record(paths, "c-a1") is None
    path.write_text("second {")
    assert previous_record(paths, "c-a1") is None
    kept = sorted(p.read_text() for p in paths.cases.iterdir())
    assert kept == ["first {", "second {"]
