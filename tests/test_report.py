"""The HTML leaderboard report: escaping, texts, self-containment, Pareto front, and a real headless Chromium.

Page script errors are detected two ways: (1) the report's own <head> hook sets <html data-js-errors="N">
on any `error` event (uncaught exceptions, syntax errors in later scripts, failed resource loads),
unhandled promise rejection, or console.error call, and --dump-dom shows the DOM after load; (2) Chromium's
--enable-logging=stderr prints every console message of the page as `CONSOLE:<line>] "...", source:
file://...`, whatever its level, and the report logs nothing, so any such line from our file is a failure.
A control page with a deliberate error proves both detectors fire.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from harness.results.html import HEADERS, pareto_front, render_html, write_html
from harness.results.records import CaseRecord
from tests.helpers import run_pytest

CHROMIUM = Path(os.environ.get("HARNESS_TEST_CHROMIUM", "/usr/bin/chromium"))
"""Debian's chromium (tools/ensure_browser.sh installs it as root); the variable exists to test the CI rule."""
EVIL = "<script>alert(1)</script>"


def _row(model: str, backend: str, resolved: int, cases: int, cost: float | None, **extra) -> dict:
    rate = resolved / cases
    row = {
        "model": model,
        "agent_backend": backend,
        "cases": cases,
        "resolved": resolved,
        "resolve_rate": rate,
        "resolve_rate_lo": max(rate - 0.12, 0.0),
        "resolve_rate_hi": min(rate + 0.13, 1.0),
        "resolve_rate_completed": rate,
        "run_fail_rate": 0.05,
        "pass_at_1": rate,
        "pass_at_k": min(rate + 0.1, 1.0),
        "k": 2,
        "wall_s_median": 93.25,
        "attempts_run": cases,
        "prompt_tokens": 1_234_567,
        "completion_tokens": 45_678,
        "cost_usd": cost,
        "latency_p50": 1.2,
        "latency_p90": 3.4,
        "latency_p99": 9.9,
        "per_repo": {
            "django/django": {
                "cases": cases // 2,
                "resolved": resolved // 2,
                "rate": (resolved // 2) / (cases // 2),
            },
            "sympy/sympy": {
                "cases": cases - cases // 2,
                "resolved": resolved - resolved // 2,
                "rate": (resolved - resolved // 2) / (cases - cases // 2),
            },
        },
    }
    row.update(extra)
    return row


ROWS = [
    _row("openrouter/anthropic/claude-sonnet-4", "mini", 21, 50, 12.5),
    _row("chutes/deepseek-ai/DeepSeek-V3-0324", "mini", 18, 50, 1.75),
    _row("chutes/Qwen/Qwen3-Coder-480B", "sweagent", 18, 50, 3.2),
    _row(EVIL, "mini", 10, 50, None),
    _row("local/qwen2.5-coder-7b", "mini", 4, 50, 0.0),
    _row("openrouter/openai/gpt-4.1-mini", "mini", 9, 50, 0.9, per_repo={}),
]


def _record(model: str, backend: str, i: int, outcome: str = "resolved", traj: bool = True) -> CaseRecord:
    case_id = f"{re.sub(r'[^A-Za-z0-9]+', '_', model)}__django-{i}__1"
    return CaseRecord(
        run_id="r1",
        case_id=case_id,
        model_id=model,
        provider=None,
        litellm_id=None,
        instance_id=f"django__django-{i}",
        repo="django/django",
        split="test",
        attempt=1,
        agent_backend=backend,
        outcome=outcome,
        outcome_class="resolved" if outcome == "resolved" else "empty-patch",
        artifacts={"trajectory": f"artifacts/{case_id}/trajectory.json"} if traj else {},
    )


RECORDS = [
    _record(ROWS[0]["model"], "mini", 1),
    _record(ROWS[0]["model"], "mini", 2, "unresolved", traj=False),
    _record(EVIL, "mini", 3, "unresolved"),
    _record("local/qwen2.5-coder-7b", "mini", 4),
]


@pytest.fixture(scope="module")
def page() -> str:
    return render_html(ROWS, RECORDS, title="Leaderboard r1 & <u>", run_dir=Path("/runs/r1"))


def test_escapes_model_ids_and_title(page):
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<u>" not in page and "r1 &amp; &lt;u&gt;" in page
    assert page.count("<script>") == 2  # the error hook and the sort script, nothing else


def test_unknown_cost_and_interval_text(page):
    table = page.split('id="leaderboard"')[1].split("</table>")[0]
    assert "unknown" in table and "$0.00<" in table  # unknown cost is not $0; a known zero is
    assert "42.0% [30.0\u201355.0]" in table
    assert "36.0% [24.0\u201349.0]" in table
    unknown = page.split('id="unknown-cost"')[1].split("</ul>")[0]
    assert "&lt;script&gt;" in unknown  # listed beside the scatter, not plotted
    assert page.count('class="pt') == 5


def test_self_contained(page):
    for bad in ('src="http', "src='http", 'href="http', "href='http", "@import", "url(", "<link", "://"):
        assert bad not in page, bad


def test_links_anchors_and_heatmap(page):
    anchors = set(re.findall(r'<a href="#([^"]+)"', page))
    sections = set(re.findall(r'<section id="([^"]+)"', page))
    assert len(anchors) == len(ROWS) and anchors <= sections
    rec = RECORDS[0]
    assert f'href="cases/{rec.case_id}.json"' in page
    assert f'href="artifacts/{rec.case_id}/trajectory.json"' in page
    heat = page.split('class="heat"')[1].split("</table>")[0]
    assert heat.count("\u2013</td>") == 2  # the model with no per-repo data: no cases in either repo
    assert "40%<small>10/25</small>" in heat


def _brute_front(points):
    return sorted(
        i
        for i, (c, r) in enumerate(points)
        if not any(c2 <= c and r2 >= r and (c2, r2) != (c, r) for c2, r2 in points)
    )


def test_pareto_front_against_brute_force():
    rng = random.Random(7)
    for _ in range(500):
        n = rng.randint(0, 9)
        pts = [(rng.choice([0.0, 0.5, 1.0, 2.0, 3.5]), rng.choice([0.1, 0.3, 0.5, 0.7])) for _ in range(n)]
        front = pareto_front(pts)
        assert sorted(front) == _brute_front(pts), pts
        assert [pts[i][0] for i in front] == sorted(pts[i][0] for i in front)
    assert pareto_front([(1.0, 0.5), (2.0, 0.4), (0.5, 0.2), (3.0, 0.9)]) == [2, 0, 3]
    for pts in itertools.permutations([(1.0, 0.5), (1.0, 0.5), (1.0, 0.4)]):
        assert len(pareto_front(list(pts))) == 2


def _chromium(html: Path, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        *args,
        html.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def _page_errors(html: Path, dom: str, stderr: str) -> list[str]:
    marked = re.findall(r'data-js-errors="(\d+)"', dom)
    console = [ln for ln in stderr.splitlines() if "CONSOLE" in ln and html.as_uri() in ln]
    return [f"data-js-errors={m}" for m in marked] + console


def _require_chromium() -> None:
    """Skip where Chromium is missing, except in CI (CI=true): there the report test must run, so it fails."""
    if CHROMIUM.exists():
        return
    reason = f"{CHROMIUM} missing: run `bash tools/ensure_browser.sh`"
    if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
        pytest.fail(f"{reason} (CI is set: the browser test may not be skipped there)", pytrace=False)
    pytest.skip(reason)


def test_headless_chromium_renders(tmp_path):
    _require_chromium()
    html = write_html(tmp_path / "leaderboard.html", ROWS, RECORDS, title="Leaderboard r1", run_dir=tmp_path)
    started = time.monotonic()
    dom = _chromium(html, tmp_path, "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _page_errors(html, dom.stdout, dom.stderr) == []
    body = dom.stdout.split('id="leaderboard"')[1].split("<tbody>")[1].split("</tbody>")[0]
    assert body.count("<tr") == len(ROWS)
    assert dom.stdout.count('<section id="cases-') == len(ROWS)

    shot = tmp_path / "report.png"
    run = _chromium(html, tmp_path, f"--screenshot={shot}", "--window-size=1400,2000")
    assert run.returncode == 0 and shot.stat().st_size > 10_000, run.stderr[-2000:]
    shutil.copyfile(shot, "/tmp/harness-report.png")

    # The sort script works: a click on the cost header orders by cost, unknown cost last.
    click = '<script>document.querySelectorAll("#leaderboard th")[14].click();</script></body>'
    sorted_page = tmp_path / "sorted.html"
    sorted_page.write_text(html.read_text().replace("</body>", click))
    clicked = _chromium(sorted_page, tmp_path, "--dump-dom")
    assert _page_errors(sorted_page, clicked.stdout, clicked.stderr) == []
    tbody = clicked.stdout.split('id="leaderboard"')[1].split("</tbody>")[0]
    assert re.findall(r'<tr><td data-v="(\d+)"', tbody) == ["5", "6", "2", "3", "1", "4"]

    # Control: the same page with a failing script must trip both detectors, else they prove nothing.
    bad = tmp_path / "broken.html"
    bad.write_text(html.read_text().replace("</body>", "<script>notDefined();</script></body>"))
    broken = _chromium(bad, tmp_path, "--dump-dom")
    errors = _page_errors(bad, broken.stdout, broken.stderr)
    assert any(e.startswith("data-js-errors=") for e in errors), errors
    assert any("Uncaught ReferenceError" in e for e in errors), errors
    print(f"chromium: 4 runs in {time.monotonic() - started:.1f}s; screenshot /tmp/harness-report.png")


def test_attempts_column_reads_the_rows_key(page):
    """Defect: the column read a key no row has, so it always showed n/a."""
    table = page.split('id="leaderboard"')[1].split("</table>")[0]
    first = table.split("<tbody>")[1].split("</tr>")[0]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", first)
    assert cells[HEADERS.index("attempts run")] == "50"


def test_pairwise_matrix_is_escaped_and_oriented():
    rows = ROWS[:2] + [ROWS[3]]
    pair = {
        "model_a": rows[0]["model"],
        "agent_backend_a": "mini",
        "model_b": EVIL,
        "agent_backend_b": "mini",
    }
    pair.update(paired_cases=20, instances=10, rate_a=0.6, rate_b=0.1, delta=0.5, delta_lo=0.2, delta_hi=0.7)
    pair.update(a_only=10, b_only=0, p_value=0.002, p_holm=0.004, significant=True)
    page = render_html(rows, [], title="t", run_dir=None, pairs=[pair])
    matrix = page.split('id="pairwise"')[1].split("</table>")[0]
    assert EVIL not in page and "&lt;script&gt;" in matrix
    assert "+50.0%<small>[+20, +70] p=0.004</small>" in matrix  # row 1 minus the EVIL column
    assert "-50.0%<small>[-70, -20] p=0.004</small>" in matrix  # and the mirror cell
    assert matrix.count("pw-none") == 4  # the pairs with no paired case


@pytest.mark.parametrize(("ci", "outcome"), [("true", "1 failed"), ("", "1 skipped")])
def test_a_missing_browser_fails_in_ci_and_skips_elsewhere(ci, outcome):
    done = run_pytest(
        "tests/test_report.py::test_headless_chromium_renders", "-q", "-rfs",
        env={"HARNESS_TEST_CHROMIUM": "/nonexistent/chromium", "CI": ci}, timeout=120,
    )  # fmt: skip
    assert outcome in done.stdout, done.stdout[-2000:]
    assert done.returncode == (1 if ci else 0)
    assert "/nonexistent/chromium missing: run `bash tools/ensure_browser.sh`" in done.stdout
