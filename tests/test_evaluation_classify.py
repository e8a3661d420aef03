"""Outcome classification from the official evaluator's files, patch pre-classification, evaluation slots.

report.json files are real swebench outputs (tests/samples/swebench-eval); run_instance.log lines follow
swebench 4.1.0's wording (APPLY_PATCH_FAIL, "Test timed out after N seconds.").
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import threading
import time
from pathlib import Path

import pytest

from harness.agents import AgentResult, looks_like_diff
from harness.infra.eval_slots import eval_slot
from harness.infra.evaluation import classify_evaluation, failing_tests_message
from harness.run.case import patch_class

SAMPLES = Path(__file__).resolve().parent / "samples" / "swebench-eval"
REAL_DIFF = (SAMPLES / "django__django-16379" / "patch.diff").read_text()

APPLY_FAILED_LOG = """\
2025-01-01 10:00:00,000 - INFO - Container for sqlfluff__sqlfluff-1625 created: 3f2a
2025-01-01 10:00:01,000 - INFO - Intermediate patch for sqlfluff__sqlfluff-1625 written to /logs/patch.diff
2025-01-01 10:00:01,100 - INFO - Failed to apply patch to container: git apply --verbose
2025-01-01 10:00:01,200 - INFO - Failed to apply patch to container: git apply --verbose --reject
2025-01-01 10:00:01,300 - INFO - Failed to apply patch to container: patch --batch --fuzz=5 -p1 -i
2025-01-01 10:00:01,300 - INFO - >>>>> Patch Apply Failed:
patching file src/sqlfluff/rules/L031.py
Hunk #1 FAILED at 212.
1 out of 1 hunk FAILED -- saving rejects to file src/sqlfluff/rules/L031.py.rej
"""

TIMEOUT_LOG = """\
2025-01-01 10:00:00,000 - INFO - Eval script for pvlib__pvlib-python-1072 written to /logs/eval.sh
2025-01-01 10:30:00,000 - INFO - Test runtime: 1_800.00 seconds
2025-01-01 10:30:00,001 - INFO - Traceback (most recent call last):
swebench.harness.utils.EvaluationError: pvlib__pvlib-python-1072: Test timed out after 1800 seconds.
"""

CRASH_LOG = """\
2025-01-01 10:00:00,000 - INFO - Container for pydicom__pydicom-1694 created: 3f2a
2025-01-01 10:00:00,500 - ERROR - Error in evaluating model for pydicom__pydicom-1694: 500 Server Error

docker.errors.APIError: 500 Server Error for http+docker://localhost/v1.41/containers/3f2a/start
"""


def log_dir_with_report(tmp_path: Path, instance_id: str) -> Path:
    log_dir = tmp_path / "logs" / instance_id
    log_dir.mkdir(parents=True)
    for name in ("report.json", "test_output.txt"):
        (log_dir / name).write_bytes((SAMPLES / instance_id / name).read_bytes())
    return log_dir


def log_dir_with_log(tmp_path: Path, text: str | None) -> Path:
    log_dir = tmp_path / "logs" / "inst"
    log_dir.mkdir(parents=True)
    if text is not None:
        (log_dir / "run_instance.log").write_text(text)
    return log_dir


# --- classify_evaluation -----------------------------------------------------------------------------


def test_resolved_report(tmp_path: Path) -> None:
    log_dir = log_dir_with_report(tmp_path, "django__django-16379")
    ev = classify_evaluation("django__django-16379", log_dir, 12.5)
    assert (ev.outcome_class, ev.resolved, ev.infra, ev.message) == ("resolved", True, False, "")
    assert ev.wall_s == 12.5
    assert ev.log_dir == log_dir
    assert ev.report is not None and ev.report["patch_successfully_applied"] is True
    assert len(ev.tests_status["PASS_TO_PASS"]["success"]) == 362
    assert ev.tests_status["FAIL_TO_PASS"]["success"] == [
        "test_has_key_race_handling (cache.tests.FileBasedCachePathLibTests)",
        "test_has_key_race_handling (cache.tests.FileBasedCacheTests)",
    ]


def test_unresolved_report_names_failing_tests(tmp_path: Path) -> None:
    log_dir = log_dir_with_report(tmp_path, "django__django-11099")
    ev = classify_evaluation("django__django-11099", log_dir, 3.0)
    assert (ev.outcome_class, ev.resolved, ev.infra) == ("unresolved", False, False)
    f2p, p2p = ev.message.split("; ")
    assert f2p == (
        "FAIL_TO_PASS failing: test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests), "
        "test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests), "
        "test_help_text (auth_tests.test_validators.UserAttributeSimilarityValidatorTest)"
    )
    assert p2p.startswith(
        "PASS_TO_PASS failing: test_help_text (auth_tests.test_validators.MinimumLengthValidatorTest), "
    )
    assert p2p.endswith(" (+14 more)")  # 19 failing, 5 shown
    assert p2p.count("(auth_tests.") == 5


def test_unresolved_report_with_long_failure_list(tmp_path: Path) -> None:
    log_dir = log_dir_with_report(tmp_path, "astropy__astropy-14995")
    ev = classify_evaluation("astropy__astropy-14995", log_dir, 3.0)
    assert ev.outcome_class == "unresolved"
    assert ev.message.startswith(
        "FAIL_TO_PASS failing: astropy/nddata/mixins/tests/test_ndarithmetic.py::test_nddata_bitmask_arithmetic; "
        "PASS_TO_PASS failing: astropy/nddata/mixins/tests/test_ndarithmetic.py::test_arithmetics_data[data10-data20], "
    )
    assert ev.message.endswith(" (+174 more)")  # 179 failing PASS_TO_PASS tests
    assert len(ev.message) < 600


def test_report_wins_over_log(tmp_path: Path) -> None:
    log_dir = log_dir_with_report(tmp_path, "django__django-16379")
    (log_dir / "run_instance.log").write_text("Test timed out after 5 seconds.\n")
    assert classify_evaluation("django__django-16379", log_dir, 1.0).outcome_class == "resolved"


def test_patch_apply_failed_is_a_model_outcome(tmp_path: Path) -> None:
    log_dir = log_dir_with_log(tmp_path, APPLY_FAILED_LOG)
    ev = classify_evaluation("sqlfluff__sqlfluff-1625", log_dir, 1.5)
    assert (ev.outcome_class, ev.resolved, ev.infra) == ("patch-apply-failed", False, False)
    assert ev.message == "the patch does not apply"
    assert ev.report is None and ev.tests_status is None


def test_eval_timeout_is_infra(tmp_path: Path) -> None:
    log_dir = log_dir_with_log(tmp_path, TIMEOUT_LOG)
    ev = classify_evaluation("pvlib__pvlib-python-1072", log_dir, 1800.0)
    assert (ev.outcome_class, ev.resolved, ev.infra) == ("eval-timeout", False, True)
    assert ev.message == "the evaluator's test run timed out"


def test_missing_logs_is_evaluator_error(tmp_path: Path) -> None:
    log_dir = tmp_path / "never-written"
    ev = classify_evaluation("pydicom__pydicom-1694", log_dir, 0.2)
    assert (ev.outcome_class, ev.resolved, ev.infra) == ("evaluator-error", False, True)
    assert ev.message == f"evaluator failed: no log at {log_dir / 'run_instance.log'}"


def test_empty_log_is_evaluator_error(tmp_path: Path) -> None:
    log_dir = log_dir_with_log(tmp_path, "\n\n")
    ev = classify_evaluation("inst", log_dir, 0.2)
    assert ev.outcome_class == "evaluator-error"
    assert ev.message == f"evaluator failed: no log at {log_dir / 'run_instance.log'}"


def test_crash_log_tail_in_message(tmp_path: Path) -> None:
    log_dir = log_dir_with_log(tmp_path, CRASH_LOG)
    ev = classify_evaluation("pydicom__pydicom-1694", log_dir, 0.5)
    assert (ev.outcome_class, ev.infra) == ("evaluator-error", True)
    assert ev.message.startswith("evaluator failed: 2025-01-01 10:00:00,000 - INFO - Container for")
    assert ev.message.endswith(
        "docker.errors.APIError: 500 Server Error for http+docker://localhost/v1.41/containers/3f2a/start"
    )
    assert ev.message.count(" | ") == 2  # the last 3 non-blank lines
    assert "\n" not in ev.message


# --- failing_tests_message ---------------------------------------------------------------------------


def status(f2p: list[str], p2p: list[str]) -> dict:
    return {
        "tests_status": {
            "FAIL_TO_PASS": {"success": [], "failure": f2p},
            "PASS_TO_PASS": {"success": ["ok"], "failure": p2p},
        }
    }


def test_failing_tests_message_truncates_beyond_five() -> None:
    tests = [f"t{i}" for i in range(1, 8)]
    assert failing_tests_message(status(tests, [])) == "FAIL_TO_PASS failing: t1, t2, t3, t4, t5 (+2 more)"
    assert failing_tests_message(status(tests[:5], [])) == "FAIL_TO_PASS failing: t1, t2, t3, t4, t5"
    assert (
        failing_tests_message(status(tests[:6], [])) == "FAIL_TO_PASS failing: t1, t2, t3, t4, t5 (+1 more)"
    )


def test_failing_tests_message_both_keys() -> None:
    assert (
        failing_tests_message(status(["a"], ["b", "c"]))
        == "FAIL_TO_PASS failing: a; PASS_TO_PASS failing: b, c"
    )
    assert failing_tests_message(status([], ["b"])) == "PASS_TO_PASS failing: b"


def test_failing_tests_message_nothing_failing() -> None:
    assert failing_tests_message(status([], [])) == "not resolved"
    assert failing_tests_message({}) == "not resolved"
    assert failing_tests_message({"tests_status": None}) == "not resolved"


# --- looks_like_diff / patch_class ---------------------------------------------------------------------


def test_looks_like_diff() -> None:
    assert looks_like_diff(REAL_DIFF)
    assert looks_like_diff("--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n")
    assert not looks_like_diff("")
    assert not looks_like_diff("I fixed the bug in x.py by changing a to b.")
    assert looks_like_diff(
        "diff --git a/x.py b/x.py\nold mode 100644\nnew mode 100755\n"
    )  # mode-only: evaluated
    assert looks_like_diff("diff --git a/x.bin b/x.bin\nGIT binary patch\nliteral 3\nKcmV+b0000\n")  # binary
    assert not looks_like_diff("@@ -1 +1 @@\n-a\n+b\n")  # hunk without file header


@pytest.mark.parametrize(
    ("patch", "exit_status", "expected"),
    [
        ("", "Submitted", "empty-patch"),
        ("   \n\t\n", "Submitted", "empty-patch"),
        ("", "LimitsExceeded", "step-limit"),
        ("", "TimeExceeded", "agent-timeout"),
        ("", "RepeatedFormatError", "format-errors"),
        ("\n", "TimeExceeded", "agent-timeout"),
        ("", "RuntimeError", "empty-patch"),
        ("The fix is to change line 3.", "Submitted", "malformed-patch"),
        ("The fix is to change line 3.", "LimitsExceeded", "malformed-patch"),
        (REAL_DIFF, "Submitted", None),
        (REAL_DIFF, "LimitsExceeded", None),  # a diff is evaluated whatever the exit
    ],
)
def test_patch_class(patch: str, exit_status: str, expected: str | None) -> None:
    assert patch_class(AgentResult(patch=patch, exit_status=exit_status)) == expected


# --- eval_slot ---------------------------------------------------------------------------------------


def hold_slot(slots_dir: str, n_slots: int, entered, released, hold_s: float) -> None:
    with eval_slot(Path(slots_dir), n_slots, poll_s=0.02):
        entered.set()
        time.sleep(hold_s)
    released.value = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes


@pytest.fixture
def holder(tmp_path: Path):
    """Start a process that takes one slot, keeps it 0.5 s, and records when it let go."""
    ctx = multiprocessing.get_context("fork")
    procs = []

    def start(n_slots: int):
        entered, released = ctx.Event(), ctx.Value("d", 0.0)
        proc = ctx.Process(target=hold_slot, args=(str(tmp_path / ".slots"), n_slots, entered, released, 0.5))
        proc.start()
        procs.append(proc)
        assert entered.wait(10), "holder never entered its slot"
        return proc, released

    yield start
    for proc in procs:
        proc.join(10)
        assert proc.exitcode == 0


def test_eval_slot_waits_for_the_holder(tmp_path: Path, holder) -> None:
    proc, released = holder(1)
    with eval_slot(tmp_path / ".slots", 1, poll_s=0.02) as waited:
        entered_at = time.monotonic()
    proc.join(10)
    assert 0.3 < waited < 3.0
    assert released.value > 0
    # we entered only after the holder left (its timestamp is taken just after the unlock)
    assert entered_at >= released.value - 0.05


def test_eval_slot_two_slots_no_wait(tmp_path: Path, holder) -> None:
    proc, released = holder(2)
    with eval_slot(tmp_path / ".slots", 2, poll_s=0.02) as waited:
        assert proc.is_alive()  # both inside at once
        assert released.value == 0.0
    assert waited < 0.15
    assert sorted(p.name for p in (tmp_path / ".slots").iterdir()) == ["queue", "slot-0.lock", "slot-1.lock"]
    assert list((tmp_path / ".slots" / "queue").iterdir()) == []  # no ticket left behind


def test_eval_slot_released_after_exception(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), eval_slot(tmp_path, 1):
        raise RuntimeError("evaluator crashed")
    with eval_slot(tmp_path, 1, poll_s=0.02) as waited:
        assert waited < 0.1


def enter_and_log(slots_dir: str, index: int, log: str) -> None:
    with eval_slot(Path(slots_dir), 1, poll_s=0.01):
        with open(log, "a") as out:
            out.write(f"{index}\n")
        time.sleep(0.03)


def _queue_behind(ctx, slots: Path, index: int, log: Path):
    """Start a process that queues for the slot; return once its ticket is in the queue."""
    proc = ctx.Process(target=enter_and_log, args=(str(slots), index, str(log)))
    proc.start()
    deadline = time.monotonic() + 10
    while not list((slots / "queue").glob(f"*-{proc.pid}-*")):
        assert time.monotonic() < deadline, "the waiter never queued"
        time.sleep(0.01)
    return proc


def test_waiters_get_the_slot_in_the_order_they_came(tmp_path: Path) -> None:
    """First come, first served: without the queue, whoever polled first after a release won (on the pipeline
    benchmark one patch waited 27.8 s behind later ones)."""
    ctx = multiprocessing.get_context("fork")
    slots, log = tmp_path / ".slots", tmp_path / "order.txt"
    with eval_slot(slots, 1, poll_s=0.01):
        waiters = [_queue_behind(ctx, slots, i, log) for i in range(6)]
    for proc in waiters:
        proc.join(20)
        assert proc.exitcode == 0
    assert log.read_text().split() == [str(i) for i in range(6)]
    assert list((slots / "queue").iterdir()) == []


def test_a_waiter_that_died_in_the_queue_holds_nobody_up(tmp_path: Path) -> None:
    import os
    import signal

    ctx = multiprocessing.get_context("fork")
    slots, log = tmp_path / ".slots", tmp_path / "order.txt"
    with eval_slot(slots, 1, poll_s=0.01):
        dead = _queue_behind(ctx, slots, 0, log)
        os.kill(dead.pid, signal.SIGKILL)
        dead.join(10)
        alive = _queue_behind(ctx, slots, 1, log)
    alive.join(10)
    assert alive.exitcode == 0
    assert log.read_text().split() == ["1"]
    assert list((slots / "queue").iterdir()) == []  # the dead waiter's ticket was removed


def test_report_json_copied_verbatim(tmp_path: Path) -> None:
    """Guard for the fixtures above: the sample report is the evaluator's own file, keyed by instance id."""
    log_dir = log_dir_with_report(tmp_path, "django__django-11099")
    data = json.loads((log_dir / "report.json").read_text())
    assert list(data) == ["django__django-11099"]
    assert data["django__django-11099"]["resolved"] is False
    shutil.rmtree(log_dir)
    assert classify_evaluation("django__django-11099", log_dir, 0.0).outcome_class == "evaluator-error"


def test_torn_report_is_evaluator_error(tmp_path: Path) -> None:
    log_dir = log_dir_with_log(tmp_path, None)
    (log_dir / "report.json").write_text('{"inst": {"resolved": tr')
    assert classify_evaluation("inst", log_dir, 0.0).outcome_class == "evaluator-error"


# --- the CPU governor of eval_slot ---------------------------------------------------------------------


def test_a_busy_machine_admits_no_second_evaluation(tmp_path: Path, holder) -> None:
    """Slot 1 is free, but the CPU is over the target: we wait for slot 0 instead."""
    proc, released = holder(2)
    with eval_slot(tmp_path / ".slots", 2, poll_s=0.02, cpu_target=80, cpu_percent=lambda: 95.0) as waited:
        entered_at = time.monotonic()
    proc.join(10)
    assert 0.3 < waited < 3.0 and entered_at >= released.value - 0.05


def test_a_calm_machine_admits_the_second_evaluation_at_once(tmp_path: Path, holder) -> None:
    proc, released = holder(2)
    with eval_slot(tmp_path / ".slots", 2, poll_s=0.02, cpu_target=80, cpu_percent=lambda: 10.0) as waited:
        assert proc.is_alive() and released.value == 0.0
    assert waited < 0.15


def test_the_first_slot_is_admitted_however_busy(tmp_path: Path) -> None:
    with eval_slot(tmp_path / ".slots", 4, poll_s=0.02, cpu_target=80, cpu_percent=lambda: 100.0) as waited:
        assert waited < 0.1


def _spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_the_governor_reads_the_real_cpu(tmp_path: Path, holder) -> None:
    """With every CPU thread spinning, psutil reports the machine busy and slot 1 is refused."""
    import os

    from harness.infra.eval_slots import _cpu_percent

    ctx = multiprocessing.get_context("fork")
    spinners = [ctx.Process(target=_spin, args=(3.0,)) for _ in range(os.cpu_count() or 1)]
    for spinner in spinners:
        spinner.start()
    try:
        time.sleep(0.3)
        assert _cpu_percent() >= 80
        proc, released = holder(2)
        with eval_slot(tmp_path / ".slots", 2, poll_s=0.02, cpu_target=80) as waited:
            entered_at = time.monotonic()
        assert entered_at >= released.value - 0.05 and waited > 0.2  # waited for slot 0
    finally:
        for spinner in spinners:
            spinner.join(10)


def test_the_governor_reads_the_cpu_over_its_recent_readings_without_a_new_sample(monkeypatch) -> None:
    """Within a second of its readings the governor reads the CPU over the last 0.2 s of them instead of
    sleeping through a fresh 0.2 s sample (which each slot beyond the first cost once it was freed)."""
    import psutil

    import harness.infra.eval_slots as slots

    slept: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(slots.time, "sleep", lambda s: slept.append(round(s, 3)) or real_sleep(s))
    monkeypatch.setattr(slots, "_readings", threading.local())  # this thread has no readings yet
    first = slots._cpu_percent()
    assert slept == [0.2] and 0.0 <= first <= 100.0
    real_sleep(0.1)
    assert 0.0 <= slots._cpu_percent() <= 100.0 and slots._cpu_percent() >= 0.0
    assert slept == [0.2]  # both read over the readings of 0.2-0.3 s before: no sample
    monkeypatch.setattr(slots, "_readings", threading.local())
    slots._note_cpu()
    real_sleep(0.15)
    slots._cpu_percent()  # 0.15 s of readings: only the rest of the window
    assert len(slept) == 2 and 0.0 < slept[1] <= 0.05
    slots._readings.history.clear()
    slots._readings.history.append((time.monotonic() - 5.0, psutil.cpu_times()))  # too old to use
    slots._cpu_percent()
    assert slept[2:] == [0.2]


def test_a_waiter_takes_a_freed_slot_beyond_the_first_without_a_cpu_sample(
    tmp_path: Path, holder, monkeypatch
):
    """Slot 0 busy throughout, slot 1 held for 0.5 s: the waiter noted the CPU while it waited, so once slot 1
    frees the governor reads the CPU at once (no 0.2 s sample) and the waiter takes it."""
    import harness.infra.eval_slots as slots

    slept: list[float] = []
    real_sleep = time.sleep
    monkeypatch.setattr(slots.time, "sleep", lambda s: slept.append(round(s, 3)) or real_sleep(s))
    with eval_slot(tmp_path / ".slots", 2, poll_s=0.02):  # slot 0, kept by this test
        proc, released = holder(2)  # slot 1, for 0.5 s
        with eval_slot(tmp_path / ".slots", 2, poll_s=0.02, cpu_target=101) as waited:
            entered_at = time.monotonic()
    assert entered_at >= released.value - 0.05 and waited > 0.3
    assert 0.2 not in slept, slept  # only polls
