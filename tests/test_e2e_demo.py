"""End to end, as a user runs it: `pytest evals -m demo -n 2 --junitxml ...` in a subprocess.

Real containers, the official evaluator, mini-swe-agent over real HTTP to the scripted server.
"""

from __future__ import annotations

import json
import os
import uuid
import xml.etree.ElementTree as ET

import pytest

from tests.helpers import run_cli, run_pytest

pytestmark = pytest.mark.containers
EXPECTED = {"gold": 3, "empty": 0, "scripted": 2}
# Per process: under `pytest -n`, each xdist worker that runs a test here makes its own demo run. Since dcfb685
# the harness tells same-id runs in different folders apart (RunPaths.run_label); distinct ids keep these runs
# apart in any listing too.
RUN_ID = f"e2e-demo-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def demo_run(fixture_images, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    junit = runs / "junit.xml"
    done = run_pytest(
        "evals",
        "-m",
        "demo",
        "-n",
        "2",
        "--junitxml",
        str(junit),
        "--runs-dir",
        str(runs),
        "--run-id",
        RUN_ID,
    )
    return done, runs / RUN_ID, junit


def _records(run_dir) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (run_dir / "cases").glob("*.json")}


def test_demo_run_exits_zero_and_prints_the_leaderboard(demo_run):
    done, _, _ = demo_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert f"swebench-harness leaderboard (run {RUN_ID})" in done.stdout
    assert "5 passed" in done.stdout and "4 failed" in done.stdout


def test_demo_records_have_the_expected_outcomes(demo_run):
    _, run_dir, _ = demo_run
    records = _records(run_dir)
    assert len(records) == 9
    for model, resolved in EXPECTED.items():
        mine = [r for r in records.values() if r["model_id"] == model]
        assert len(mine) == 3
        assert sum(r["outcome"] == "resolved" for r in mine) == resolved, model
    ledger = records["scripted-fixtures__ledger-3-a1"]
    assert ledger["outcome"] == "unresolved" and "test_paginate_first_page" in ledger["message"]
    assert all(r["outcome_class"] == "empty-patch" for r in records.values() if r["model_id"] == "empty")
    calc = records["scripted-fixtures__calc-1-a1"]
    assert calc["telemetry"]["calls"] == 5 and calc["steps"] == 5
    assert (run_dir / calc["artifacts"]["trajectory"]).is_file()
    assert (run_dir / calc["artifacts"]["report"]).is_file()
    assert calc["versions"]["swebench"] == "4.1.0"
    assert calc["dataset"]["source"] == "bundled fixtures"


def test_predictions_match_the_records(demo_run):
    _, run_dir, _ = demo_run
    records = _records(run_dir)
    for model in EXPECTED:
        lines = [
            json.loads(x)
            for x in (run_dir / "predictions" / model / "attempt-1.jsonl").read_text().splitlines()
        ]
        assert len(lines) == 3
        for line in lines:
            assert set(line) >= {"instance_id", "model_name_or_path", "model_patch"}
            assert line["model_patch"] == records[line["case_id"]]["patch"]


def test_junit_carries_outcomes_and_properties(demo_run):
    _, _, junit = demo_run
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    seen, gates = {}, {}
    for case in cases:
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        if case.get("classname") == "gates":
            gates[case.get("name")] = (
                "failed"
                if case.find("failure") is not None
                else ("skipped" if case.find("skipped") is not None else "passed")
            )
        else:
            seen[props["harness_case"]] = (props, case.find("failure") is not None)
    assert len(seen) == 9
    # one testcase per applicable gate; the demo's baseline_ratio fails report-only (3 instances cannot
    # show a significant lead), and the plugin's JUnit writer marks every non-passed gate as a failure
    assert gates == {"baseline_ratio": "skipped", "malformed_patches": "passed"}  # demo: report only
    props, failed = seen["scripted-fixtures__ledger-3-a1"]
    assert failed and props["outcome_class"] == "unresolved"
    props, failed = seen["gold-fixtures__calc-1-a1"]
    assert not failed and len(props["patch_sha256"]) == 64 and float(props["eval_wall_s"]) > 0


def _csv(path):
    import csv

    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_wall_column_is_each_models_own_time(demo_run):
    """wall_s_median is the median of agent + evaluation + overhead per case, without the waits on other cases
    and on the run's servers' start-up; the empty baseline does nothing here (no agent under mini-swe-agent, an
    empty patch is never evaluated), so its wall is ~0 however long its cases waited for a worker still grading
    the case before. The run starts with its servers loading: the first cases waited for them, and say so."""
    import statistics

    _, run_dir, _ = demo_run
    rows = {r["model"]: r for r in _csv(run_dir / "leaderboard.csv")}
    records = list(_records(run_dir).values())
    for model, row in rows.items():
        own = [
            r["agent_wall_s"] + r["eval_wall_s"] + r["overhead_s"] - r["server_start_wait_s"]
            for r in records
            if r["model_id"] == model
        ]
        assert float(row["wall_s_median"]) == pytest.approx(statistics.median(own), abs=0.02), model
    assert float(rows["empty"]["wall_s_median"]) < 0.1
    waited = [r for r in records if r["server_start_wait_s"] > 0.2]
    assert waited and all(r["server_start_wait_s"] <= r["overhead_s"] + 0.01 for r in records)  # rounding


def test_leaderboard_versions_intervals_and_manifest(demo_run):
    from harness.results.leaderboard import version_columns

    done, run_dir, _ = demo_run
    rows = {r["model"]: r for r in _csv(run_dir / "leaderboard.csv")}
    assert list(rows) == ["gold", "scripted", "empty"]
    repos = ["repo:fixtures/calc", "repo:fixtures/ledger", "repo:fixtures/textkit"]
    assert list(rows["gold"]) == version_columns("v3") + repos
    scripted = rows["scripted"]
    assert (scripted["cases"], scripted["resolved"], scripted["resolve_rate"]) == ("3", "2", "0.6667")
    # cluster Wilson by instance, 2 of 3 instances (one attempt each)
    assert (scripted["resolve_rate_lo"], scripted["resolve_rate_hi"]) == ("0.1594", "0.9547")
    assert scripted["rank"] == "1-3" and scripted["k"] == "1" and scripted["pass_k_instances_excluded"] == "0"
    pairwise = _csv(run_dir / "pairwise.csv")
    assert [(p["model_a"], p["model_b"]) for p in pairwise] == [
        ("gold", "scripted"),
        ("gold", "empty"),
        ("scripted", "empty"),
    ]
    assert all(p["significant"] == "no" for p in pairwise)  # 3 instances: nothing is told apart
    assert scripted["agent_backend"] == "mini-swe-agent" and scripted["token_source"] == "provider"
    assert int(scripted["prompt_tokens"]) > 0 and float(scripted["latency_p50"]) > 0
    assert scripted["cost_usd"] == ""  # no catalog price: unknown, not $0
    assert scripted["repo:fixtures/ledger"] == "0.0" and scripted["repo:fixtures/calc"] == "1.0"
    assert f"{RUN_ID},gold,baseline,3,3" in (run_dir.parent / "leaderboard.csv").read_text()
    html = (run_dir / "leaderboard.html").read_text()
    assert 'id="pairwise"' in html
    assert "scripted" in html and "http://" not in html and "https://" not in html
    for version in ("v0", "v1", "v2", "v3"):
        cli = run_cli("leaderboard", str(run_dir), "--version", version)
        assert cli.returncode == 0, cli.stderr
        header = list(_csv(run_dir / "leaderboard.csv")[0])
        assert header == version_columns(version) + (repos if version in ("v2", "v3") else [])
    manifest = json.loads((run_dir / "manifest.json").read_text(), parse_constant=pytest.fail)  # no Infinity
    assert manifest["cases"] == 9 and manifest["outcomes"] == {"resolved": 5, "unresolved": 4}
    assert manifest["dataset_lock"]["hf_repo"] == "SWE-bench/SWE-bench_Lite"
    assert manifest["versions"]["mini-swe-agent"].startswith("2.")
    assert isinstance(manifest["cpu_samples"], list) and manifest["grids"] == ["demo"]
    gates = {g["name"]: g["status"] for g in manifest["gates"]}
    assert gates["baseline_ratio"] == "failed-report-only" and gates["cpu"] == "not-applicable"
    assert "gate baseline_ratio: FAILED (report only) - best scripted 66.7%" in done.stdout
    assert "does not fail the run" in done.stdout


def test_resume_reruns_infra_errors_only(demo_run):
    done, run_dir, _ = demo_run
    assert done.returncode == 0
    records_dir = run_dir / "cases"
    # Turn one finished case into an infra error, as a crashed evaluator would have left it.
    victim = records_dir / "gold-fixtures__textkit-2-a1.json"
    rec = json.loads(victim.read_text())
    rec.update(outcome="error", outcome_class="evaluator-error", message="simulated")
    victim.write_text(json.dumps(rec))
    before = {p.name: p.stat().st_mtime_ns for p in records_dir.glob("*.json") if p != victim}
    again = run_pytest("evals", "-m", "demo", "--runs-dir", str(run_dir.parent), "--resume", RUN_ID)
    assert again.returncode == 0, again.stdout[-3000:]
    assert json.loads(victim.read_text())["outcome"] == "resolved"
    after = {p.name: p.stat().st_mtime_ns for p in records_dir.glob("*.json") if p != victim}
    assert after == before, "finished model outcomes must not be re-run"
    assert len(list(records_dir.glob("*.json"))) == 9
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert len(manifest["resumes"]) == 1


def test_the_progress_line_shows_cases_resolved_spend_and_eta(demo_run):
    done, _, _ = demo_run
    lines = [line for line in done.stdout.splitlines() if line.startswith("swebench-harness: progress ")]
    assert lines and lines[0].startswith("swebench-harness: progress 1/9 cases") and "ETA" in lines[0]
    last = lines[-1]
    assert last.startswith("swebench-harness: progress 9/9 cases") and "done in" in last
    for part in ("gold 3/3", "scripted 2/3", "empty 0/3", "infra errors 0", "LLM calls 14", "of $5"):
        assert part in last, last


def test_records_name_the_image_digest_they_ran_on(demo_run, runtime):
    _, run_dir, _ = demo_run
    records = _records(run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for rec in records.values():
        image = rec["dataset"]["image"]
        if rec["model_id"] == "empty":  # no container, nothing evaluated
            assert rec["image_digest"] is None
            continue
        digest = runtime.run("image", "inspect", "--format", "{{.Id}}", image).stdout.strip()
        assert rec["image_digest"] == digest and manifest["images"][image] == [digest]


def _chromium_dom(html, tmp_path, *args):
    from tests.test_report import _chromium, _page_errors

    run = _chromium(html, tmp_path, *args)
    assert run.returncode == 0, run.stderr[-2000:]
    assert _page_errors(html, run.stdout, run.stderr) == []
    return run.stdout


def _clicking(page, run_dir, tmp_path, selector: str):
    """A copy of `page` whose links resolve in the run folder and whose script clicks the first `selector`."""
    html = page.read_text().replace("<head>", f'<head><base href="{run_dir.as_uri()}/">', 1)
    click = f"<script>document.querySelector({json.dumps(selector)}).click();</script></body>"
    target = tmp_path / f"click-{len(list(tmp_path.glob('click-*')))}.html"
    target.write_text(html.replace("</body>", click))
    return target


@pytest.mark.skipif(
    not os.path.exists("/usr/bin/chromium")
    and os.environ.get("CI") != "true",  # in CI a missing browser fails
    reason="no /usr/bin/chromium (make browser)",
)
def test_case_pages_in_a_browser_and_click_through_from_the_leaderboard(demo_run, tmp_path):
    import re
    import shutil
    from html import unescape

    from tests.test_report import _chromium

    _, run_dir, _ = demo_run
    case_id = "scripted-fixtures__calc-1-a1"
    rec = _records(run_dir)[case_id]
    traj = json.loads((run_dir / rec["artifacts"]["trajectory"]).read_text())
    commands = [
        a["command"] for m in traj["messages"] if m["role"] == "assistant" for a in m["extra"]["actions"]
    ]
    added = [
        line for line in rec["patch"].splitlines() if line.startswith("+") and not line.startswith("+++")
    ]
    assert len(list((run_dir / "pages").glob("case-*.html"))) == 9
    assert (run_dir / "memo.md").read_text().startswith(f"# Validation memo: run {RUN_ID}")

    page = run_dir / "pages" / f"case-{case_id}.html"
    dom = _chromium_dom(page, tmp_path, "--dump-dom")
    text = unescape(re.sub(r"<[^>]+>", "", dom))
    assert len(commands) == 5 and all(command in text for command in commands)
    assert all(line in text for line in added) and dom.count('<span class="a">') == len(added)
    assert "FAIL_TO_PASS (1/1 pass)" in text and "mean() of an empty list raises ZeroDivisionError" in text

    board = run_dir / "leaderboard.html"
    first_h2 = re.search(r"<h2>([^<]+)</h2>", board.read_text()).group(1)
    assert first_h2 == "Validation memo"
    clicked = _chromium_dom(
        _clicking(board, run_dir, tmp_path, f'a[href="pages/case-{case_id}.html"]'), tmp_path, "--dump-dom"
    )
    assert f"<title>{case_id} \u00b7 resolved</title>" in clicked and commands[0] in unescape(clicked)
    heat = _chromium_dom(_clicking(board, run_dir, tmp_path, ".heat td a"), tmp_path, "--dump-dom")
    assert "<title>fixtures/calc: cases</title>" in heat and f'href="case-{case_id}.html"' in heat
    compare = _chromium_dom(
        _clicking(page, run_dir / "pages", tmp_path, 'a[href^="instance-"]'), tmp_path, "--dump-dom"
    )
    assert "Side by side" in compare and compare.count('<span class="badge b-resolved">') >= 2

    shot = tmp_path / "case-page.png"
    run = _chromium(page, tmp_path, f"--screenshot={shot}", "--window-size=1300,2400")
    assert run.returncode == 0 and shot.stat().st_size > 10_000, run.stderr[-2000:]
    shutil.copyfile(shot, "/tmp/harness-case-page.png")
