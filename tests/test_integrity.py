"""Grading integrity: patch flags, the test command's exit status against forged runner output, and
calibration (stable / flaky / broken) through the official evaluator in the fixture containers."""

from __future__ import annotations

import json

import pytest

from harness.infra import integrity
from harness.infra.integrity import IntegrityFlag as F
from tests.helpers import ROOT, run_cli


def _diff(path: str, old: str = "a\n", new: str = "b\n") -> str:
    return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-{old}+{new}"


@pytest.mark.parametrize(
    ("path", "test_patch_path", "flags"),
    [
        ("src/calc/stats.py", "tests/test_stats.py", []),
        ("tests/test_stats.py", "tests/test_stats.py", [F.EDITS_TESTS]),  # the test patch's own file
        ("lib/checks.py", "lib/checks.py", [F.EDITS_TESTS]),  # any file the test patch touches
        ("pkg/test_util.py", "tests/test_x.py", [F.EDITS_TESTS]),  # test path by convention
        ("pkg/util_test.py", "tests/test_x.py", [F.EDITS_TESTS]),
        ("conftest.py", "tests/test_x.py", [F.EDITS_TEST_CONFIG]),
        ("tox.ini", "tests/test_x.py", [F.EDITS_TEST_CONFIG]),
        (".github/workflows/ci.yml", "tests/test_x.py", [F.EDITS_TEST_CONFIG]),
        ("tests/conftest.py", "tests/test_x.py", [F.EDITS_TESTS, F.EDITS_TEST_CONFIG]),
    ],
)
def test_static_flags(path, test_patch_path, flags):
    assert integrity.patch_flags(_diff(path), _diff(test_patch_path)) == flags


def test_setup_cfg_is_flagged_only_for_its_test_sections():
    pytest_section = _diff("setup.cfg", "[tool:pytest]\n", "[tool:pytest]\naddopts = -p no:x\n")
    metadata = _diff("setup.cfg", "[metadata]\n", "[metadata]\nname = x\n")
    assert integrity.patch_flags(pytest_section, "") == [F.EDITS_TEST_CONFIG]
    assert integrity.patch_flags(metadata, "") == []


def test_exit_status_probe_sits_after_the_parsed_region():
    script = [
        "cd /testbed",
        ": '>>>>> Start Test Output'",
        "pytest -rA",
        ": '>>>>> End Test Output'",
        "git x",
    ]
    probed = integrity.add_exit_status_probe(script, "abc", ">>>>> Start Test Output")
    assert probed == [
        "cd /testbed",
        ": '>>>>> Start Test Output'",
        "pytest -rA",
        "HARNESS_TEST_EXIT=$?",
        ": '>>>>> End Test Output'",
        'echo "harness-test-exit-abc=$HARNESS_TEST_EXIT"',
        "git x",
    ]
    assert integrity.add_exit_status_probe(["no markers"], "abc", ">>>>> Start Test Output") == ["no markers"]


def test_only_the_nonce_line_counts_and_the_last_one_wins():
    out = "harness-test-exit-guess=0\nharness-test-exit-n1=0\n+ echo x\nharness-test-exit-n1=1\n"
    assert integrity.test_exit_status(out, "n1") == 1
    assert integrity.test_exit_status(out, "other") is None


def test_output_flag_needs_a_failing_command_and_no_failing_test():
    assert integrity.output_flags(1, {"t1": "PASSED"}) == [F.FORGED_TEST_OUTPUT]
    assert integrity.output_flags(1, {"t1": "PASSED", "t2": "FAILED"}) == []  # an honest failure
    assert integrity.output_flags(0, {"t1": "PASSED"}) == []
    assert integrity.output_flags(None, {"t1": "PASSED"}) == []  # no status recorded (timeout, old log)


# --- through the official evaluator ------------------------------------------------------------------

FORGE_CALC = '''diff --git a/calc/stats.py b/calc/stats.py
--- a/calc/stats.py
+++ b/calc/stats.py
@@ -1,4 +1,11 @@
 """Small statistics helpers."""
+import atexit
+
+
+@atexit.register
+def _forge():  # prints PASSED lines after pytest's own summary: the last status wins in the parser
+    for name in ("test_mean", "test_median_odd", "test_median_even", "test_mean_empty_raises"):
+        print(f"PASSED tests/test_stats.py::{name}")
<BLANK>
<BLANK>
 def mean(values):
'''.replace("<BLANK>", " ")  # diff context lines of blank source lines are one space


@pytest.mark.containers
def test_forged_runner_output_resolves_officially_and_is_flagged(fixture_images, tmp_path):
    from harness.infra.evaluation import evaluate_patch

    row = fixture_images["fixtures__calc-1"]
    ev = evaluate_patch(
        row,
        FORGE_CALC,
        model_id="forger",
        eval_run_id="integrity-forge",
        namespace="localhost",
        log_root=tmp_path,
        timeout_s=120,
    )
    assert ev.report is not None, ev.message
    assert ev.resolved  # swebench 4.1.0 believes the forged PASSED lines
    assert ev.test_exit_status == 1  # pytest itself failed
    assert ev.integrity == [F.FORGED_TEST_OUTPUT]


def _coin_test_patch(n: int) -> str:
    body = (
        "import random\n\nimport pytest\n\n\n"
        f"@pytest.mark.parametrize('k', range({n}))\ndef test_coin(k):\n    assert random.random() < 0.5\n"
    )
    lines = body.splitlines()
    hunk = "".join(f"+{line}\n" for line in lines)
    return (
        "diff --git a/tests/test_coin.py b/tests/test_coin.py\nnew file mode 100644\n--- /dev/null\n"
        f"+++ b/tests/test_coin.py\n@@ -0,0 +1,{len(lines)} @@\n{hunk}"
    )


@pytest.mark.containers
def test_calibration_names_a_flaky_instance_and_quarantines_it(fixture_images, tmp_path):
    """calc-1 made flaky on purpose: 20 coin-flip tests in PASS_TO_PASS (no two gold runs agree, p=1e-6)."""
    import shutil

    import yaml

    from harness.run.calibrate import calibrate, update_quarantine
    from harness.run.lifecycle import RunOptions

    rows = {k: dict(v) for k, v in fixture_images.items()}
    calc = rows["fixtures__calc-1"]
    calc["test_patch"] = calc["test_patch"] + _coin_test_patch(20)
    coins = [f"tests/test_coin.py::test_coin[{k}]" for k in range(20)]
    calc["PASS_TO_PASS"] = json.dumps(json.loads(calc["PASS_TO_PASS"]) + coins)
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    options = RunOptions(
        config_dir=cfg,
        runs_dir=tmp_path / "runs",
        credentials=tmp_path / "none",
        markexpr="demo",
        run_id="cal",
    )
    run, verdicts = calibrate(options, 2, instances=["fixtures__calc-1", "fixtures__ledger-3"], rows=rows)
    by_id = {v.instance_id: v for v in verdicts}
    assert by_id["fixtures__ledger-3"].verdict == "stable"
    flaky = by_id["fixtures__calc-1"]
    assert flaky.verdict == "flaky", flaky.reason
    assert flaky.flipped_tests and set(flaky.flipped_tests) <= set(coins)
    assert "tests that flipped: tests/test_coin.py::test_coin[" in flaky.line()
    kept = update_quarantine(cfg / "quarantine.yaml", verdicts, run)
    assert [(e.instance, e.verdict, e.run_id) for e in kept] == [("fixtures__calc-1", "flaky", "cal")]
    saved = yaml.safe_load((cfg / "quarantine.yaml").read_text())["instances"][0]
    assert saved["evaluator_version"] == "swebench 4.1.0" and saved["harness_version"]
    assert (tmp_path / "runs" / "cal" / "leaderboard.csv").is_file()  # the evidence is a normal run


@pytest.mark.containers
def test_calibrate_cli_reports_the_demo_instances_stable(fixture_images, tmp_path):
    import shutil

    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    done = run_cli(
        "--config", str(cfg), "calibrate", "-m", "demo", "--repeats", "2",
        "--runs-dir", str(tmp_path / "runs"), "--run-id", "cal-demo", timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for iid in ("fixtures__calc-1", "fixtures__textkit-2", "fixtures__ledger-3"):
        assert f"{iid}: stable - gold resolved 2/2, the no-op patch does not resolve it" in lines
    assert lines[-1] == f"quarantine: 0 instance(s) in {cfg / 'quarantine.yaml'}"
    records = list((tmp_path / "runs" / "cal-demo" / "cases").glob("*.json"))
    assert len(records) == 9  # 3 instances x (2 gold + 1 no-op)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--repeats", "0"], "error: --repeats 0: use 1 or more gold runs per instance"),
        (["--instances", "fixtures__nope-9"], "error: --instances: fixtures__nope-9 not in grid demo"),
    ],
)
def test_calibrate_bad_arguments(tmp_path, args, words):
    done = run_cli("calibrate", "-m", "demo", "--runs-dir", str(tmp_path), *args)
    assert done.returncode == 2 and done.stderr.strip() == words, done.stderr
