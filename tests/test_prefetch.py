"""A worker starts its next case's agent while the case before is graded (harness.run.prefetch), and
--no-prefetch turns that off. Real runs of `pytest evals` in one process (no -n: the order of cases is the
collection order), real containers and the real evaluator."""

from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.helpers import run_evals

pytestmark = pytest.mark.containers

ORDER = [
    f"{model}-fixtures__{instance}-a1"
    for model in ("gold", "scripted")
    for instance in ("calc-1", "textkit-2", "ledger-3")
]


def _records(run_dir) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")}


def _run(runs, run_id: str, *extra: str):
    args = ("-m", "demo", "--models", "gold,scripted", "--no-eval-cache", "--runs-dir", str(runs))
    done = run_evals(*args, "--run-id", run_id, *extra)  # no cache: each gold patch is graded (seconds)
    return done, _records(runs / run_id)


@pytest.fixture(scope="module")
def both_runs(fixture_images, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    tag = uuid.uuid4().hex[
        :8
    ]  # per process: under `pytest -n` each worker running a test here makes these runs
    return _run(runs, f"prefetch-{tag}"), _run(runs, f"no-prefetch-{tag}", "--no-prefetch")


def test_the_next_agent_runs_while_the_case_before_is_graded(both_runs):
    (done, records), _ = both_runs
    assert sorted(records) == sorted(ORDER), done.stdout[-3000:]
    # A gold case's "agent" is done at once, so its patch waits while the gold case before it is graded.
    for case_id in ORDER[1:3]:
        assert records[case_id]["handoff_wait_s"] > 0.3, (case_id, records[case_id])
    assert records[ORDER[0]]["handoff_wait_s"] == 0.0  # the first case has no case before it
    for rec in records.values():  # the hand-off is its own slice of the case's wall time, not overhead
        parts = rec["agent_wall_s"] + rec["handoff_wait_s"] + rec["eval_queue_wait_s"] + rec["eval_wall_s"]
        assert parts + rec["overhead_s"] == pytest.approx(rec["case_wall_s"], abs=0.01), rec["case_id"]


def test_no_prefetch_grades_each_case_first_and_the_verdicts_are_the_same(both_runs):
    (_, with_prefetch), (done, without) = both_runs
    assert sorted(without) == sorted(ORDER), done.stdout[-3000:]
    assert all(rec["handoff_wait_s"] == 0.0 for rec in without.values())
    verdict = ("outcome", "outcome_class", "steps", "patch_sha256")
    for case_id in ORDER:
        assert {k: with_prefetch[case_id].get(k) for k in verdict} == {
            k: without[case_id].get(k) for k in verdict
        }
    assert sum(r["outcome"] == "resolved" for r in without.values()) == 5  # gold 3/3, scripted 2/3


def test_a_prefetched_case_whose_test_never_ran_is_run_by_resume(fixture_images, tmp_path):
    args = ("-m", "demo", "--models", "gold,empty", "--runs-dir", str(tmp_path), "--run-id", "stop")
    first = run_evals(*args, "--maxfail", "1")  # empty-calc-1 fails: the session stops after it
    assert "stopping after 1 failures" in first.stdout, first.stdout[-3000:]
    cases = tmp_path / "stop" / "cases"
    assert sorted(_records(tmp_path / "stop")) == sorted(
        [
            "gold-fixtures__calc-1-a1",
            "gold-fixtures__textkit-2-a1",
            "gold-fixtures__ledger-3-a1",
            "empty-fixtures__calc-1-a1",
        ]
    )
    assert (cases / "empty-fixtures__textkit-2-a1.running").is_file()  # started early, never recorded
    again = run_evals(*args[:-2], "--resume", "stop")
    assert again.returncode == 0, again.stdout[-3000:]  # model failures only: the run is complete
    assert "1 case(s) were running" in again.stdout + again.stderr
    records = _records(tmp_path / "stop")
    assert len(records) == 6 and not list(cases.glob("*.running"))
    assert all(r["outcome_class"] == "empty-patch" for k, r in records.items() if k.startswith("empty-"))


def test_the_next_agent_does_not_wait_for_the_removal_of_the_container_before(
    runtime, fixture_images, tmp_path
):
    """The agent's container is removed in the background (the agent server's fork answers first): with a
    runtime whose `rm` takes 6 s more (a wrapper first on PATH), each next agent's first LLM request goes out
    within 6 s of the case before's last answer, and each record still holds its removal's seconds. (The gap
    is ~1 s idle; with two CPU hogs on 2 cores it reached 3.9 s, which a 3 s delay could not tell apart.)"""
    from tests.test_mini_agent import slow_runtime

    delay = 6
    slow = slow_runtime(runtime, tmp_path / "bin", "rm", delay)
    env = {"PATH": f"{slow.parent}{os.pathsep}{os.environ['PATH']}"}
    args = ("-m", "demo", "--models", "scripted", "--no-eval-cache", "--runs-dir", str(tmp_path / "runs"))
    done = run_evals(*args, "--run-id", "rm", env=env)
    records = _records(tmp_path / "runs" / "rm")
    assert sorted(records) == sorted(ORDER[3:]), done.stdout[-3000:]
    assert all(rec["container_remove_s"] >= delay for rec in records.values()), records

    def calls(case_id: str) -> list[dict]:
        path = tmp_path / "runs" / "rm" / "artifacts" / case_id / "llm_calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    for before, after in zip(ORDER[3:-1], ORDER[4:], strict=True):
        last = calls(before)[-1]
        gap = calls(after)[0]["started_at"] - (last["started_at"] + last["latency_s"])
        assert 0 < gap < delay, (before, after, gap)
