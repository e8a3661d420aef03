"""--predictions ID=PATH: patches from a SWE-bench predictions file scored like any other model."""

from __future__ import annotations

import json

import pytest

from harness.agents.predictions import load_predictions, parse_predictions_option
from harness.errors import HarnessError
from tests.helpers import ROOT, run_evals

LEDGER_TEST_ONLY = """diff --git a/tests/test_pages.py b/tests/test_pages.py
--- a/tests/test_pages.py
+++ b/tests/test_pages.py
@@ -2,4 +2,4 @@ from ledger.pages import page_count, paginate
<BLANK>
<BLANK>
 def test_page_count():
-    assert page_count(range(10), 3) == 4
+    assert page_count(range(10), 3) >= 0
""".replace("<BLANK>", " ")  # diff context lines of blank source lines are one space


def _write(path, lines) -> str:
    path.write_text("".join(json.dumps(x) + "\n" if not isinstance(x, str) else x + "\n" for x in lines))
    return str(path)


def test_jsonl_json_list_and_keyed_object_all_load(tmp_path):
    rows = [
        {"instance_id": "a", "model_patch": "p1"},
        {"instance_id": "a", "model_patch": "p2", "attempt": 2},
    ]
    want = {("a", 1): "p1", ("a", 2): "p2"}
    assert load_predictions(_write(tmp_path / "p.jsonl", rows)) == want
    (tmp_path / "p.json").write_text(json.dumps(rows))
    assert load_predictions(str(tmp_path / "p.json")) == want
    (tmp_path / "k.json").write_text(json.dumps({"a": {"instance_id": "a", "model_patch": None}}))
    assert load_predictions(str(tmp_path / "k.json")) == {("a", 1): ""}


@pytest.mark.parametrize(
    ("lines", "words"),
    [
        (['{"instance_id": "a", "model_patch": ""}', "{not json"], "line 2 is not JSON"),
        ([{"model_patch": "x"}], "line 1 has no string instance_id"),
        ([{"instance_id": "a", "model_patch": 3}], "line 1: model_patch must be a string or null"),
        ([{"instance_id": "a", "model_patch": "", "attempt": 0}], "line 1: attempt must be an integer >= 1"),
        ([{"instance_id": "a", "model_patch": ""}, "", {"instance_id": "a"}], "line 3 repeats a attempt 1"),
        ([""], "no predictions in the file"),
    ],
)
def test_a_malformed_file_is_one_line_naming_the_line(tmp_path, lines, words):
    path = _write(tmp_path / "bad.jsonl", lines)
    with pytest.raises(HarnessError, match=words) as info:
        parse_predictions_option(f"byo={path}")
    assert str(info.value).startswith(f"--predictions byo={path}: ") and "\n" not in str(info.value)


def test_a_bad_option_or_path_is_one_line(tmp_path):
    with pytest.raises(HarnessError, match="use ID=PATH"):
        parse_predictions_option("Bad Id=x")
    with pytest.raises(HarnessError, match="cannot read"):
        parse_predictions_option(f"byo={tmp_path / 'missing.jsonl'}")


def test_malformed_file_stops_the_run_with_one_error_line(tmp_path):
    path = _write(tmp_path / "bad.jsonl", ['{"instance_id": "fixtures__calc-1"}', "oops"])
    done = run_evals("-m", "demo", "--predictions", f"byo={path}", "--collect-only")
    assert done.returncode == 4 and "Traceback" not in done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert errors == [
        f"ERROR: --predictions byo={path}: line 2 is not JSON (Expecting value); one object per line"
    ]


@pytest.mark.containers
def test_a_predictions_model_is_evaluated_recorded_and_ranked(fixture_images, tmp_path):
    """Acceptance: gold patch -> resolved, a non-diff -> malformed-patch, a test-file-only patch -> flagged."""
    path = _write(
        tmp_path / "byo.jsonl",
        [
            {"instance_id": "fixtures__calc-1", "model_patch": fixture_images["fixtures__calc-1"]["patch"]},
            {"instance_id": "fixtures__textkit-2", "model_patch": "I fixed slugify, trust me."},
            {"instance_id": "fixtures__ledger-3", "model_patch": LEDGER_TEST_ONLY},
        ],
    )
    runs = tmp_path / "runs"
    done = run_evals(
        "-m",
        "demo",
        "--models",
        "empty",
        "--predictions",
        f"byo={path}",
        "--no-gates",  # the malformed patch is on purpose: the malformed_patches gate fails
        "--runs-dir",
        str(runs),
        "--run-id",
        "byo",
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    records = {p.stem: json.loads(p.read_text()) for p in (runs / "byo" / "cases").glob("byo-*.json")}
    calc, slug, ledger = (
        records[f"byo-{i}-a1"] for i in ("fixtures__calc-1", "fixtures__textkit-2", "fixtures__ledger-3")
    )
    assert (calc["outcome"], calc["outcome_class"], calc["integrity"]) == ("resolved", "resolved", [])
    assert (slug["outcome"], slug["outcome_class"]) == ("unresolved", "malformed-patch")
    assert ledger["outcome"] == "unresolved" and ledger["integrity"] == ["edits-tests"]
    assert all(r["agent_backend"] == "predictions" for r in records.values())
    assert "byo" in done.stdout.split("swebench-harness leaderboard")[1]  # ranked with the other models
    for file in (runs / "byo" / "predictions").glob("*/*.jsonl"):
        ids = [json.loads(line)["instance_id"] for line in file.read_text().splitlines()]
        assert len(ids) == len(set(ids)), file


def _one_case_run(tmp_path, predictions: list, instance: str, **over):
    from harness.run.lifecycle import EvalRun, RunOptions

    path = _write(tmp_path / "p.jsonl", predictions)
    options = RunOptions(
        config_dir=ROOT / "config",
        runs_dir=tmp_path / "runs",
        credentials=tmp_path / "none",
        models=("empty",),
        predictions=(f"byo={path}",),
        markexpr="demo",
        run_id="one",
        check_models="no",
        **over,
    )
    run = EvalRun(options)
    run.start()
    ctx = run.context()
    try:
        case = next(c for c in run.selected if c.model_id == "byo" and c.instance_id == instance)
        return run.run_case(ctx, case)
    finally:
        ctx.close()


def test_an_instance_missing_from_the_file_is_skipped_as_no_prediction(tmp_path):
    record = _one_case_run(
        tmp_path, [{"instance_id": "fixtures__calc-1", "model_patch": ""}], "fixtures__ledger-3"
    )
    assert (record.outcome, record.outcome_class) == ("skipped", "no-prediction")
    assert "has no prediction for fixtures__ledger-3 attempt 1" in record.message


@pytest.mark.containers
def test_strict_integrity_makes_a_flagged_patch_unresolved(fixture_images, tmp_path):
    record = _one_case_run(
        tmp_path,
        [{"instance_id": "fixtures__ledger-3", "model_patch": LEDGER_TEST_ONLY}],
        "fixtures__ledger-3",
        strict_integrity=True,
    )
    assert (record.outcome, record.outcome_class, record.integrity) == (
        "unresolved",
        "integrity-flagged",
        ["edits-tests"],
    )
    assert record.message.startswith("--strict-integrity: edits-tests (the evaluator said unresolved)")
