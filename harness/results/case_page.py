"""One self-contained HTML page per case (runs/<run_id>/pages/case-<case_id>.html): the run folder is the viewer.

The page shows the verdict (outcome, class, message, integrity flags, evaluation cache), every
FAIL_TO_PASS and PASS_TO_PASS test with its status, timings and cost, the problem statement, the agent's
trajectory step by step (thought, commands, folded output, return code, the LLM request's latency, tokens,
cost and retries), the submitted patch as a coloured diff, errors, and links to the raw files.
Everything is read from the record and the case's artifacts (harness.results.trajectory); text is
redacted and escaped (harness.results.pagekit.esc).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.results import pagekit as k
from harness.results.records import CaseRecord, RunPaths
from harness.results.trajectory import Step, Trajectory, load_trajectory, read_calls, task_text

INTEGRITY_TEXT = {
    "edits-tests": "the patch edits a test file (one the instance's test patch touches, or a test path)",
    "edits-test-config": "the patch edits test or CI configuration (conftest.py, pytest.ini, tox.ini, ...)",
    "forged-test-output": "the test command failed while its parsed output shows no failing test",
}
UNFOLD_JS = (
    "<script>function unfoldAll(open){document.querySelectorAll('#trajectory details')"
    ".forEach(function(d){d.open=open;});}</script>"
)


def _rows(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"<tr><th>{k.esc(name)}</th><td>{value}</td></tr>" for name, value in pairs)


def _verdict(rec: CaseRecord) -> str:
    flags = "".join(
        f"<li><code>{k.esc(f)}</code>: {k.esc(INTEGRITY_TEXT.get(f, ''))}</li>" for f in rec.integrity
    )
    cache = k.esc(rec.eval_cache)
    if rec.eval_cache == "hit" and rec.eval_cache_source:
        run_id, _, case_id = rec.eval_cache_source.partition("/")
        src = k.esc(rec.eval_cache_source)
        link = f'<a href="{k.href(f"case-{case_id}.html")}">{src}</a>' if run_id == rec.run_id else src
        cache += f" (verdict reused from {link})"
    digest = rec.image_digest or "digest not recorded"
    pairs = [
        ("outcome", f"{k.badge(rec.outcome)} <code>{k.esc(rec.outcome_class)}</code>"),
        ("message", k.esc(rec.message) or "\u2013"),
        ("agent exit status", k.esc(rec.agent_exit_status or "\u2013")),
        ("steps", k.esc(rec.steps)),
        ("integrity flags", f"<ul>{flags}</ul>" if flags else "none"),
        ("evaluation cache", cache),
        ("test command exit status", k.esc("n/a" if rec.test_exit_status is None else rec.test_exit_status)),
        ("instance image", f"<code>{k.esc(rec.dataset.get('image', 'n/a'))}</code> {k.esc(digest)}"),
        ("infra retries", k.esc(rec.infra_retries)),
        ("started / finished", k.esc(f"{rec.started_at} / {rec.finished_at}")),
    ]
    return f"<table>{_rows(pairs)}</table>"


def _tests(rec: CaseRecord) -> str:
    status = rec.tests_status or {}
    if not status:
        return '<p class="note">Not evaluated: no test results (see the outcome class).</p>'
    out = []
    for group in ("FAIL_TO_PASS", "PASS_TO_PASS", "FAIL_TO_FAIL", "PASS_TO_FAIL"):
        tests = status.get(group) or {}
        ok, bad = list(tests.get("success") or []), list(tests.get("failure") or [])
        if not ok and not bad and group in ("FAIL_TO_FAIL", "PASS_TO_FAIL"):
            continue
        rows = [f'<tr><td class="t-bad">\u2717 failed</td><td><code>{k.esc(t)}</code></td></tr>' for t in bad]
        rows += [f'<tr><td class="t-ok">\u2713 passed</td><td><code>{k.esc(t)}</code></td></tr>' for t in ok]
        body = "".join(rows) or '<tr><td colspan="2" class="note">no tests</td></tr>'
        out.append(f"<h3>{group} ({len(ok)}/{len(ok) + len(bad)} pass)</h3><table>{body}</table>")
    return "".join(out)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _timings(rec: CaseRecord) -> str:
    t = rec.telemetry
    lat = t.latencies_s
    timing = [
        ("agent", k.seconds(rec.agent_wall_s)),
        ("patch waiting for its worker", k.seconds(rec.handoff_wait_s)),
        ("evaluation queue wait", k.seconds(rec.eval_queue_wait_s)),
        ("evaluation", k.seconds(rec.eval_wall_s)),
        ("overhead (set-up, container start, records)", k.seconds(rec.overhead_s)),
        ("\u2003container start", k.seconds(rec.container_start_s)),
        (
            "\u2003waiting for the run's servers to load (the run's start-up)",
            k.seconds(rec.server_start_wait_s),
        ),
        ("container removal (beside the evaluation)", k.seconds(rec.container_remove_s)),
        ("whole case", k.seconds(rec.case_wall_s)),
        (
            "the case's own time (whole case less its waits on other cases: the leaderboard's wall)",
            k.seconds(rec.own_wall_s),
        ),
    ]
    cost = [
        ("LLM requests (failed, retries)", k.esc(f"{t.calls} ({t.failed_calls}, {t.retries})")),
        ("waited between retries", k.seconds(t.retry_wait_s)),
        (
            "tokens in / out / cached",
            k.esc(f"{t.prompt_tokens:,} / {t.completion_tokens:,} / {t.cached_tokens:,}"),
        ),
        ("token source", k.esc(t.token_source)),
        ("cost", f"{k.money(t.cost_usd)} ({k.esc(t.price_source)})"),
        (
            "provider-billed cost",
            k.money(t.provider_cost_usd) if t.provider_cost_usd is not None else "\u2013",
        ),
        ("latency p50 / p90 / max", " / ".join(k.seconds(_percentile(lat, q)) for q in (0.5, 0.9, 1.0))),
    ]
    return f'<div class="side"><div><table>{_rows(timing)}</table></div><div><table>{_rows(cost)}</table></div></div>'


def _step_meta(step: Step) -> str:
    parts = []
    if step.call:
        c = step.call
        parts.append(f"LLM {k.seconds(c.get('latency_s'))}")
        parts.append(f"{c.get('prompt_tokens', 0):,}\u2192{c.get('completion_tokens', 0):,} tokens")
        if c.get("cost_usd") is not None:
            parts.append(k.money(c.get("cost_usd")))
    if step.failed_calls:
        wait = sum(float(c.get("retry_wait_s") or 0) for c in step.failed_calls)
        statuses = ", ".join(sorted({str(c.get("status")) for c in step.failed_calls}))
        parts.append(f"{len(step.failed_calls)} failed request(s) retried ({statuses}; waited {wait:.1f} s)")
    if step.exec_s is not None:
        parts.append(f"command {k.seconds(step.exec_s)}")
    return k.esc(" \u00b7 ".join(parts))


def _step(step: Step, whole: bool = True) -> str:
    out = [
        f'<div class="step" id="step-{step.number}"><h3>Step {step.number} <span class="meta">{_step_meta(step)}</span></h3>'
    ]
    if step.thought:
        out.append(f'<div class="thought">{k.esc(k.clip(step.thought)[0])}</div>')
    out += [k.folded(cmd, label="command", cls="cmd") for cmd in step.commands]
    for obs in step.observations:
        if obs.returncode is not None:
            cls = "rc0" if obs.returncode == 0 else "rcx"
            out.append(f'<span class="rc {cls}">return code {k.esc(obs.returncode)}</span>')
        out.append(k.folded(obs.text, whole=whole) if obs.text.strip() else '<p class="note">(no output)</p>')
    out.append("</div>")
    return "".join(out)


def _index(steps: list[Step]) -> str:
    """One small link per step; red where a command returned non-zero."""
    links = []
    for s in steps:
        bad = any(o.returncode not in (None, 0) for o in s.observations) or bool(s.failed_calls)
        links.append(f'<a href="#step-{s.number}"{" class=bad" if bad else ""}>{s.number}</a>')
    return f'<div class="steps-index">{"".join(links)}</div>'


def _trajectory(traj: Trajectory | None, raw: str | None) -> str:
    if traj is None:
        return '<p class="note">No trajectory: this case ran no agent (a baseline or predictions file), or it stopped before one.</p>'
    if traj.problem:
        link = f' (<a href="{k.from_page(raw)}">raw file</a>)' if raw else ""
        return f'<p class="note">{k.esc(traj.problem)}{link}</p>'
    pre = "".join(
        f"<details><summary>{k.esc(role)} message</summary>{k.folded(text, label=role)}</details>"
        for role, text in traj.preamble
    )
    note = ""
    if traj.unmatched_calls:
        note = f'<p class="note">{abs(traj.unmatched_calls)} LLM request(s) not matched to a step.</p>'
    buttons = '<p><button onclick="unfoldAll(true)">unfold all</button> <button onclick="unfoldAll(false)">fold all</button></p>'
    summary = f"{traj.agent}: {len(traj.steps)} steps, exit status {traj.exit_status or 'n/a'}"
    body = [f'<p class="sub">{k.esc(summary)}</p>', pre, note, buttons, _index(traj.steps)]
    used = 0
    for s in traj.steps:
        used += sum(len(o.text) for o in s.observations)
        body.append(_step(s, whole=used <= k.PAGE_BUDGET_CHARS))
    return "".join(body)


def problem_html(problem: str | None) -> str:
    return k.folded(problem, label="problem statement") if problem else '<p class="note">not available</p>'


def _errors(rec: CaseRecord) -> str:
    if not rec.errors:
        return ""
    items = "".join(
        f"<h3>{k.esc(e.get('stage', 'error'))}: {k.esc(e.get('error', ''))}</h3>"
        + (k.folded(e["traceback"], label="traceback") if e.get("traceback") else "")
        for e in rec.errors
    )
    return f'<h2 id="errors">Errors</h2>{items}'


def _raw_links(rec: CaseRecord, run_dir: Path) -> str:
    files = {"record (JSON)": f"cases/{rec.case_id}.json", **rec.artifacts}
    calls = f"artifacts/{rec.case_id}/llm_calls.jsonl"
    if (run_dir / calls).is_file():
        files["LLM requests (llm_calls.jsonl)"] = calls
    items = "".join(
        f'<li><a href="{k.from_page(_relative(path, run_dir))}">{k.esc(name)}</a> <code>{k.esc(_relative(path, run_dir))}</code></li>'
        for name, path in files.items()
    )
    return f"<ul>{items}</ul>"


def _relative(path: str, run_dir: Path) -> str:
    return os.path.relpath(path, run_dir) if os.path.isabs(path) else path


def render_case_page(rec: CaseRecord, *, run_dir: Path, problem: str | None = None) -> str:
    """The whole page of one case as an HTML string."""
    raw = rec.artifacts.get("trajectory")
    traj = None
    if raw:
        calls = read_calls(run_dir / "artifacts" / rec.case_id / "llm_calls.jsonl")
        traj = load_trajectory(run_dir / _relative(raw, run_dir), calls)
    if problem is None and traj is not None:
        problem = task_text(next((text for role, text in traj.preamble if role == "user"), ""))
    title = f"{rec.case_id} \u00b7 {rec.outcome}"
    sub = f"model {rec.model_id} \u00b7 {rec.agent_backend} \u00b7 instance {rec.instance_id} ({rec.repo}) \u00b7 attempt {rec.attempt} \u00b7 run {rec.run_id}"
    nav = [
        f'<a href="{k.href("../leaderboard.html")}">\u2190 leaderboard</a>',
        f'<a href="{k.href(f"instance-{rec.instance_id}.html")}">every model on this instance</a>',
        f'<a href="{k.href(k.repo_page(rec.repo).split("/", 1)[1])}">{k.esc(rec.repo)}</a>',
    ]
    nav += [f'<a href="#{a}">{t}</a>' for a, t in (("tests", "tests"), ("timings", "timings & cost"),
            ("problem", "problem"), ("trajectory", "trajectory"), ("patch", "patch"), ("raw", "raw files"))]  # fmt: skip
    parts = [
        k.head(title, script=UNFOLD_JS),
        f'<h1>{k.esc(rec.case_id)} {k.badge(rec.outcome)}</h1><p class="sub">{k.esc(sub)}</p><nav>{"".join(nav)}</nav>',
        f'<h2 id="verdict">Verdict</h2>{_verdict(rec)}',
        f'<h2 id="tests">Tests</h2>{_tests(rec)}',
        f'<h2 id="timings">Timings and cost</h2>{_timings(rec)}',
        f'<h2 id="problem">Problem statement</h2>{problem_html(problem)}',
        f'<h2 id="trajectory">Trajectory</h2>{_trajectory(traj, raw)}',
        f'<h2 id="patch">Submitted patch</h2>{k.diff_html(rec.patch)}',
        _errors(rec),
        f'<h2 id="raw">Raw files</h2>{_raw_links(rec, run_dir)}',
        "</body></html>\n",
    ]
    return "\n".join(parts)


def write_page(path: Path, html: str) -> Path:
    """Atomically (tmp + rename), so a reader never opens half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(path)
    return path


def write_case_pages(
    paths: RunPaths, records: list[CaseRecord], problems: dict[str, Any] | None = None
) -> list[Path]:
    """pages/case-<case_id>.html for every record; `problems` maps instance id -> problem statement."""
    problems = problems or {}
    return [
        write_page(
            paths.root / k.case_page(rec.case_id),
            render_case_page(rec, run_dir=paths.root, problem=problems.get(rec.instance_id)),
        )
        for rec in records
    ]
