"""Case pages, instance and repository pages: both agents' real trajectories, escaping, redaction, folding,
the LLM requests of each step, and a 500-step trajectory rendered in linear time."""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import pytest

from harness.agents.sweagent_outputs import parse_trajectory
from harness.infra import secrets as sec
from harness.results import pagekit
from harness.results.case_page import render_case_page, write_case_pages
from harness.results.compare_pages import write_compare_pages
from harness.results.records import CaseRecord, RunPaths, Telemetry
from harness.results.trajectory import load_trajectory, read_calls
from tests.conftest import ROOT

SAMPLES = ROOT / "tests" / "samples"
SHARED = Path("/work/shared/data/samples")
EVIL = '<script>alert(1)</script><img src=x onerror="alert(2)">'
SECRET = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def _fresh_redactor():
    sec._reset_for_tests()
    yield
    sec._reset_for_tests()


def _record(run_dir: Path, case_id: str = "m-inst__x-1-a1", **extra) -> CaseRecord:
    fields = dict(
        run_id=run_dir.name, case_id=case_id, model_id="m", provider=None, litellm_id=None,
        instance_id="inst__x-1", repo="owner/x", split="test", attempt=1, agent_backend="mini-swe-agent",
        outcome="unresolved", outcome_class="unresolved",
    )  # fmt: skip
    fields.update(extra)
    return CaseRecord(**fields)


def _with_trajectory(run_dir: Path, case_id: str, source: Path, name: str = "trajectory.json") -> str:
    dest = run_dir / "artifacts" / case_id / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return f"artifacts/{case_id}/{name}"


@pytest.mark.parametrize("root", [SAMPLES, SHARED])
def test_mini_trajectory_renders_every_step_with_commands_and_outputs(tmp_path, root):
    source = root / "mini-traj" / "toy-calc.traj.json"
    rec = _record(tmp_path, artifacts={"trajectory": _with_trajectory(tmp_path, "m-inst__x-1-a1", source)})
    page = render_case_page(rec, run_dir=tmp_path)
    data = json.loads(source.read_text())
    commands = [
        a["command"] for m in data["messages"] if m["role"] == "assistant" for a in m["extra"]["actions"]
    ]
    assert len(commands) == 3 and page.count('class="step"') == 3
    for command in commands:
        assert pagekit.esc(command) in page
    assert "return code 0</span><pre>5\n</pre>" in page  # the output of `python -c ... add(2, 3)`
    assert "add(a, b) in calc.py returns a-b instead of a+b" in page  # problem from the task prompt


@pytest.mark.parametrize("root", [SAMPLES, SHARED])
@pytest.mark.parametrize(
    "name", ["sweagent_v0_pydicom__pydicom-1458.traj", "sweagent_v1_marshmallow-code__marshmallow-1867.traj"]
)
def test_sweagent_trajectories_render_as_the_backend_parses_them(tmp_path, root, name):
    source = root / "sweagent-traj" / name
    rec = _record(
        tmp_path,
        agent_backend="swe-agent",
        artifacts={"trajectory": _with_trajectory(tmp_path, "c-1", source, name)},
    )
    page = render_case_page(rec.model_copy(update={"case_id": "c-1"}), run_dir=tmp_path)
    run = parse_trajectory(source)  # harness.agents.sweagent_outputs: the backend's own reading
    assert page.count('class="step"') == run.steps > 5
    data = json.loads(source.read_text())
    first = data["trajectory"][0]["action"].strip()
    assert pagekit.esc(first) in page
    if "v1" in name:
        assert "command 0.24 s" in page  # execution_time of the first step
    assert "SWE-agent: " in page and "exit status submitted" in page


def test_llm_calls_attach_to_steps_with_retries(tmp_path):
    source = SAMPLES / "mini-traj" / "toy-calc.traj.json"
    rel = _with_trajectory(tmp_path, "c-1", source)
    calls = [
        {"status": "429", "attempt": 1, "latency_s": 0.1, "retry_wait_s": 2.0},
        {"status": "ok", "attempt": 2, "latency_s": 1.5, "prompt_tokens": 1201, "completion_tokens": 25, "cost_usd": 0.002},
        {"status": "ok", "attempt": 1, "latency_s": 0.25, "prompt_tokens": 1320, "completion_tokens": 93},
        {"status": "ok", "attempt": 1, "latency_s": 0.5, "prompt_tokens": 1400, "completion_tokens": 10},
    ]  # fmt: skip
    (tmp_path / "artifacts" / "c-1" / "llm_calls.jsonl").write_text(
        "\n".join(map(json.dumps, calls)) + "\n{torn"
    )
    assert len(read_calls(tmp_path / "artifacts" / "c-1" / "llm_calls.jsonl")) == 4
    traj = load_trajectory(tmp_path / rel, calls)
    assert [s.call["latency_s"] for s in traj.steps] == [1.5, 0.25, 0.5]
    assert len(traj.steps[0].failed_calls) == 1 and not traj.steps[1].failed_calls
    page = render_case_page(_record(tmp_path, case_id="c-1", artifacts={"trajectory": rel}), run_dir=tmp_path)
    step1 = page.split('id="step-1"')[1].split('id="step-2"')[0]
    assert "LLM 1.50 s" in step1 and "1,201\u219225 tokens" in step1 and "$0.0020" in step1
    assert "1 failed request(s) retried (429; waited 2.0 s)" in step1
    assert 'href="#step-1" class=bad' in page  # the index marks the step that needed a retry


def test_model_output_cannot_inject_markup_and_keys_are_redacted(tmp_path):
    sec.register_secret(SECRET, "OPENROUTER_API_KEY")
    messages = [
        {"role": "system", "content": EVIL},
        {"role": "user", "content": f"<pr_description>{EVIL}</pr_description>"},
        {"role": "assistant", "content": EVIL, "extra": {"actions": [{"command": f"echo {EVIL} {SECRET}"}]}},
        {"role": "tool", "content": "x", "extra": {"raw_output": f"{EVIL}\n{SECRET}\n", "returncode": 1}},
        {"role": "exit", "content": "", "extra": {"exit_status": EVIL, "submission": ""}},
    ]
    rel = "artifacts/c-1/trajectory.json"
    (tmp_path / rel).parent.mkdir(parents=True)
    (tmp_path / rel).write_text(json.dumps({"messages": messages, "info": {}}))
    rec = _record(
        tmp_path, case_id="c-1", message=EVIL, patch=f"+{EVIL}\n-{SECRET}\n", integrity=["edits-tests"],
        tests_status={"FAIL_TO_PASS": {"success": [], "failure": [EVIL]}}, artifacts={"trajectory": rel, "evil": EVIL},
        errors=[{"stage": EVIL, "error": EVIL, "traceback": EVIL}], eval_cache="hit", eval_cache_source=f"r/{EVIL}",
    )  # fmt: skip
    for page in (
        render_case_page(rec, run_dir=tmp_path, problem=EVIL),
        *(
            p.read_text()
            for p in write_compare_pages(RunPaths(tmp_path.parent, tmp_path.name), [rec], {"inst__x-1": EVIL})
        ),
    ):
        assert "<script>alert" not in page and "<img" not in page and 'onerror="' not in page
        assert SECRET not in page
    page = render_case_page(rec, run_dir=tmp_path, problem=EVIL)
    assert page.count("<script>") == 2  # the error hook and the fold buttons' script, nothing else
    assert "[REDACTED:OPENROUTER_API_KEY]" in page
    assert "return code 1" in page and "edits a test file" in page


def test_long_outputs_are_folded_and_huge_ones_clipped():
    short = pagekit.folded("one\ntwo")
    assert "<details>" not in short
    long = pagekit.folded("\n".join(f"line {i}" for i in range(1000)))
    assert "<details>" in long and "986 more lines" in long and "line 999" in long.split("<details>")[0]
    huge = pagekit.folded("x" * (pagekit.MAX_TEXT_CHARS + 5000))
    assert "5,000 characters left out" in huge and len(huge) < pagekit.MAX_TEXT_CHARS * 2 + 1000


def _synthetic(steps: int, out_lines: int = 150) -> dict:
    messages = [{"role": "system", "content": "sys"}, {"role": "user", "content": "task"}]
    for i in range(steps):
        output = "\n".join(f"step {i} output line {j} " + "x" * 40 for j in range(out_lines))
        messages.append(
            {"role": "assistant", "content": f"thought {i}", "extra": {"actions": [{"command": f"cmd {i}"}]}}
        )
        messages.append({"role": "tool", "content": "", "extra": {"raw_output": output, "returncode": i % 3}})
    return {"messages": messages, "info": {"exit_status": "LimitsExceeded"}}


def _render_time(tmp_path: Path, steps: int) -> tuple[float, str]:
    rel = f"artifacts/s{steps}/trajectory.json"
    (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / rel).write_text(json.dumps(_synthetic(steps)))
    calls = [
        {"status": "ok", "latency_s": 0.5, "prompt_tokens": 1000 + i, "completion_tokens": 50}
        for i in range(steps)
    ]
    (tmp_path / rel).with_name("llm_calls.jsonl").write_text("\n".join(map(json.dumps, calls)))
    rec = _record(tmp_path, case_id=f"s{steps}", artifacts={"trajectory": rel})
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        page = render_case_page(rec, run_dir=tmp_path)
        best = min(best, time.perf_counter() - started)
    return best, page


def test_a_500_step_trajectory_renders_quickly_and_in_linear_time(tmp_path):
    """500 steps x 150 output lines (about 5 MB of output): under 10 s (it takes well under 1 s), every
    output folded, and four times the steps costs about four times the time (quadratic would be 16x)."""
    t500, page = _render_time(tmp_path, 500)
    assert (tmp_path / "artifacts" / "s500" / "trajectory.json").stat().st_size > 5_000_000
    assert t500 < 10.0, f"500 steps took {t500:.2f}s"
    assert page.count('class="step"') == 500 and page.count("<details><summary>whole output") == 500
    assert "LLM 0.50 s \u00b7 1,499\u219250 tokens" in page  # the 500th step has the 500th request
    t125, _ = _render_time(tmp_path, 125)
    assert t500 / t125 < 8, f"125 steps {t125:.3f}s, 500 steps {t500:.3f}s: not linear"


def test_instance_and_repo_pages_put_cases_side_by_side(tmp_path):
    paths = RunPaths(tmp_path, "r1")
    recs = [
        _record(paths.root, case_id="a-inst__x-1-a1", model_id="a", outcome="resolved", outcome_class="resolved",
                patch="diff --git a/f b/f\n+fixed\n", tests_status={"FAIL_TO_PASS": {"success": ["t1"], "failure": []}}),
        _record(paths.root, case_id="b-inst__x-1-a1", model_id="b", patch="diff --git a/f b/f\n+wrong\n",
                tests_status={"FAIL_TO_PASS": {"success": [], "failure": ["t1"]}}, telemetry=Telemetry(calls=3, cost_usd=0.5)),
    ]  # fmt: skip
    written = write_compare_pages(paths, recs, {"inst__x-1": "the bug"})
    names = sorted(p.name for p in written)
    assert names == ["instance-inst__x-1.html", "repo-owner__x.html"]
    page = (paths.root / "pages" / "instance-inst__x-1.html").read_text()
    side = page.split('<div class="side">')[1]
    assert side.index("+fixed") < side.index("+wrong") and '<li class="t-bad"><code>t1</code>' in side
    assert 'href="case-a-inst__x-1-a1.html"' in page and "the bug" in page and "$0.5000" in page
    repo = (paths.root / "pages" / "repo-owner__x.html").read_text()
    assert re.search(
        r'<tr id="cases-a-[^"]+"><th>a \u00b7 mini-swe-agent</th><td><a class="o-resolved"', repo
    )
    assert len(write_case_pages(paths, recs)) == 2
    case = (paths.root / "pages" / "case-b-inst__x-1-a1.html").read_text()
    assert 'href="instance-inst__x-1.html"' in case and 'href="repo-owner__x.html"' in case
    assert 'href="../cases/b-inst__x-1-a1.json"' in case
    assert "No trajectory" in case and "FAIL_TO_PASS (0/1 pass)" in case


def test_past_the_page_budget_outputs_keep_only_their_first_and_last_lines(tmp_path, monkeypatch):
    monkeypatch.setattr(pagekit, "PAGE_BUDGET_CHARS", 100_000)
    _, page = _render_time(tmp_path, 40)  # about 10 kB of output per step
    sizes = [len(m["extra"]["raw_output"]) for m in _synthetic(40)["messages"] if m["role"] == "tool"]
    whole = sum(1 for n in range(40) if sum(sizes[: n + 1]) <= 100_000)
    assert 5 < whole < 40
    assert page.count("<details><summary>whole output") == whole
    assert page.count("in the raw file: this page is already large") == 40 - whole
    assert "step 39 output line 0 " in page and "step 39 output line 149 " in page  # first and last lines
    assert "step 39 output line 75 " not in page
