"""Side by side: one page per instance (every model and attempt on it) and one per repository.

- pages/instance-<instance_id>.html: the problem statement once, a table of every case of the instance
  (outcome, tests passed, integrity flags, steps, tokens, cost, time), then the cases side by side:
  message, failing tests and the coloured patch of each, so a reader sees why one model resolved it
  and another did not.
- pages/repo-<owner__name>.html: models x instances of the repository, each cell the attempts as links
  to their case pages. The heatmap cells of leaderboard.html link to the model's row here.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

from harness.results import pagekit as k
from harness.results.case_page import problem_html, write_page
from harness.results.records import CaseRecord, RunPaths

DASH = "\u2013"


def _label(rec: CaseRecord) -> str:
    return f"{rec.model_id} \u00b7 {rec.agent_backend} \u00b7 a{rec.attempt}"


def _passed(rec: CaseRecord, group: str) -> str:
    tests = (rec.tests_status or {}).get(group) or {}
    ok, bad = len(tests.get("success") or []), len(tests.get("failure") or [])
    return f"{ok}/{ok + bad}" if ok + bad else "\u2013"


def _case_link(rec: CaseRecord, text: str | None = None) -> str:
    return f'<a href="{k.href(f"case-{rec.case_id}.html")}">{k.esc(text or rec.case_id)}</a>'


def _table(recs: list[CaseRecord]) -> str:
    head = ["case", "model \u00b7 agent \u00b7 attempt", "outcome", "FAIL_TO_PASS", "PASS_TO_PASS", "integrity",
            "steps", "LLM requests", "tokens in / out", "cost", "case time"]  # fmt: skip
    rows = []
    for r in recs:
        t = r.telemetry
        cells = [
            _case_link(r), k.esc(_label(r)), f"{k.badge(r.outcome)} <code>{k.esc(r.outcome_class)}</code>",
            k.esc(_passed(r, "FAIL_TO_PASS")), k.esc(_passed(r, "PASS_TO_PASS")),
            k.esc(", ".join(r.integrity) or "\u2013"), k.esc(r.steps), k.esc(t.calls),
            k.esc(f"{t.prompt_tokens:,} / {t.completion_tokens:,}"), k.money(t.cost_usd) if t.calls else "\u2013",
            k.seconds(r.own_wall_s),
        ]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    ths = "".join(f"<th>{k.esc(h)}</th>" for h in head)
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _column(rec: CaseRecord) -> str:
    failing = [
        t
        for g in ("FAIL_TO_PASS", "PASS_TO_PASS")
        for t in ((rec.tests_status or {}).get(g) or {}).get("failure") or []
    ]
    tests = "".join(f'<li class="t-bad"><code>{k.esc(t)}</code></li>' for t in failing)
    return (
        f"<div><h3>{_case_link(rec, _label(rec))} {k.badge(rec.outcome)}</h3>"
        f'<p class="note">{k.esc(rec.outcome_class)}{": " + k.esc(rec.message) if rec.message else ""}</p>'
        + (f"<p>failing tests:</p><ul>{tests}</ul>" if tests else "")
        + f"{k.diff_html(rec.patch)}</div>"
    )


def render_instance_page(instance_id: str, recs: list[CaseRecord], problem: str | None) -> str:
    recs = sorted(recs, key=lambda r: (r.model_id, r.agent_backend, r.attempt))
    repo = recs[0].repo if recs else ""
    resolved = sum(r.resolved for r in recs)
    nav = (
        f'<nav><a href="{k.href("../leaderboard.html")}">\u2190 leaderboard</a>'
        f'<a href="{k.href(k.repo_page(repo).split("/", 1)[1])}">{k.esc(repo)}</a></nav>'
    )
    return "\n".join(
        [
            k.head(f"{instance_id}: every model and attempt"),
            f"<h1>{k.esc(instance_id)}</h1>",
            f'<p class="sub">{k.esc(repo)} \u00b7 {len(recs)} cases \u00b7 {resolved} resolved</p>{nav}',
            f"<h2>Problem statement</h2>{problem_html(problem)}",
            f"<h2>Cases</h2>{_table(recs)}",
            '<h2>Side by side</h2><p class="note">Each case\'s message, failing tests and submitted patch.</p>',
            f'<div class="side">{"".join(_column(r) for r in recs)}</div>',
            "</body></html>\n",
        ]
    )


def render_repo_page(repo: str, recs: list[CaseRecord]) -> str:
    from harness.results.html import _anchor

    instances = sorted({r.instance_id for r in recs})
    by_row: dict[tuple[str, str], dict[str, list[CaseRecord]]] = defaultdict(lambda: defaultdict(list))
    for r in recs:
        by_row[(r.model_id, r.agent_backend)][r.instance_id].append(r)
    head = "".join(f'<th><a href="{k.href(f"instance-{i}.html")}">{k.esc(i)}</a></th>' for i in instances)
    rows = []
    for (model, backend), cells in sorted(by_row.items()):
        tds = []
        for i in instances:
            links = " ".join(
                f'<a class="o-{k.esc(r.outcome)}" title="{k.esc(r.outcome_class)}" href="{k.href(f"case-{r.case_id}.html")}">'
                f"a{r.attempt} {k.esc(r.outcome)}</a>"
                for r in sorted(cells.get(i, []), key=lambda r: r.attempt)
            )
            tds.append(f"<td>{links or DASH}</td>")
        label = k.esc(f"{model} \u00b7 {backend}")
        rows.append(f'<tr id="{_anchor(model, backend)}"><th>{label}</th>{"".join(tds)}</tr>')
    resolved = sum(r.resolved for r in recs)
    return "\n".join(
        [
            k.head(f"{repo}: cases"),
            f'<h1>{k.esc(repo)}</h1><p class="sub">{len(instances)} instances \u00b7 {len(recs)} cases \u00b7 {resolved} resolved</p>',
            f'<nav><a href="{k.href("../leaderboard.html")}">\u2190 leaderboard</a></nav>',
            f"<table><thead><tr><th>model \u00b7 agent</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>",
            "</body></html>\n",
        ]
    )


def write_compare_pages(
    paths: RunPaths, records: list[CaseRecord], problems: dict[str, Any] | None = None
) -> list[Path]:
    """pages/instance-<id>.html for every instance and pages/repo-<repo>.html for every repository."""
    problems = problems or {}
    by_instance: dict[str, list[CaseRecord]] = defaultdict(list)
    by_repo: dict[str, list[CaseRecord]] = defaultdict(list)
    for rec in records:
        by_instance[rec.instance_id].append(rec)
        by_repo[rec.repo].append(rec)
    written = [
        write_page(paths.root / k.instance_page(i), render_instance_page(i, recs, problems.get(i)))
        for i, recs in by_instance.items()
    ]
    written += [
        write_page(paths.root / k.repo_page(repo), render_repo_page(repo, recs))
        for repo, recs in by_repo.items()
    ]
    return written
