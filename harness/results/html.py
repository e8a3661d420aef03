"""HTML leaderboard report: one self-contained file (inline CSS, inline SVG, a little inline JS).

Views of the leaderboard rows and the CaseRecords: the table (sortable), a resolve-rate bar chart with
95% error bars (cluster Wilson by instance), the pairwise matrix (harness.results.html_pairwise), cost vs
resolve rate with the Pareto front, a per-repo heatmap and, per (model, agent backend), its cases
linking to their record and trajectory files. Links are relative to
the run folder: the page is meant to live at runs/<run_id>/leaderboard.html. Nothing is loaded from
the network. A tiny script in <head> marks <html data-js-errors="N"> when the page raises a script
error or calls console.error, so a headless browser's dumped DOM shows it (tests/test_report.py).
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from html import escape
from pathlib import Path
from typing import Any
from urllib.parse import quote

from harness.results import html_pairwise, pagekit
from harness.results.records import CaseRecord

Row = dict[str, Any]
CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1500px}h1{font-size:22px;margin:0 0 4px}
h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}h3{font-size:15px;margin:18px 0 6px}
.sub,.note{color:#666;font-size:12px}table{border-collapse:collapse;font-size:13px}.wide{overflow-x:auto}
th,td{padding:3px 6px;border:1px solid #ddd;text-align:right}td.l,th.l{text-align:left}
th{background:#f3f3f3;cursor:pointer;vertical-align:bottom}tbody tr:nth-child(even){background:#fafafa}
#leaderboard td{white-space:nowrap}#leaderboard td.m{white-space:normal;min-width:150px}
.heat td{text-align:center;min-width:56px}.heat td.l{text-align:left}.heat small{display:block;font-size:10px}
.row{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}svg text{font:12px system-ui,sans-serif}
.scale{width:220px;height:12px;background:linear-gradient(90deg,#f7fbff,#08519c);border:1px solid #ccc}
.o-resolved{color:#1a7f37}.o-unresolved{color:#9a6700}.o-error{color:#cf222e}.o-skipped{color:#777}
"""
JS_ERRORS = (
    "<script>(function(){var n=0;function mark(){n+=1;"
    'document.documentElement.setAttribute("data-js-errors",String(n));}'
    'window.addEventListener("error",mark,true);window.addEventListener("unhandledrejection",mark);'
    "var ce=console.error;console.error=function(){mark();ce.apply(console,arguments);};})();</script>"
)
JS_SORT = """<script>/* click a header: sort by the cells' data-v, numbers as numbers, unknown ("") last */
document.querySelectorAll("table.sortable th").forEach(function (th, i) { th.addEventListener("click", function () {
  var body = th.closest("table").tBodies[0], asc = th.dataset.dir !== "asc"; th.dataset.dir = asc ? "asc" : "desc";
  Array.from(body.rows).sort(function (a, b) {
    var x = a.cells[i].dataset.v, y = b.cells[i].dataset.v;
    if (x === "" || y === "") return (x === "") - (y === "");
    var c = isNaN(x) || isNaN(y) ? x.localeCompare(y) : x - y; return asc ? c : -c;
  }).forEach(function (r) { body.appendChild(r); });
}); });</script>"""
INTERVALS = (
    "95% intervals cluster by instance (cluster Wilson): they cover the expected rate on instances like these"
)
HEADERS = ["#", "model", "rank", "agent", "cases", "resolved", "resolve rate [95% CI]", "of completed"]
HEADERS += ["run-fail", "pass@1", "pass@k", "attempts run", "wall p50", "tokens in / out", "cost"]
HEADERS += ["latency p50 / p90 / p99"]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (cost, rate) points that no other point dominates (cost <= and rate >=, one strictly).

    Sorted by cost. Equal points do not dominate each other: every copy of a front point is on the front.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best or (front and points[i] == points[front[-1]]):
            front.append(i)
            best = max(best, points[i][1])
    return front


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _num(x: Any, spec: str = "", unit: str = "") -> str:
    return "n/a" if x is None else f"{x:{spec}}{unit}"


def _pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{x * 100:.{digits}f}%"


def _interval(row: Row) -> str:
    rate, lo, hi = row.get("resolve_rate"), row.get("resolve_rate_lo"), row.get("resolve_rate_hi")
    if rate is None or lo is None or hi is None:
        return _pct(rate)
    return f"{rate * 100:.1f}% [{lo * 100:.1f}\u2013{hi * 100:.1f}]"


def _money(x: float | None) -> str:
    """Unknown stays "unknown" (never $0); a known tiny cost is not rounded to $0."""
    if x is None:
        return "unknown"
    return f"${x:,.2f}" if abs(x) >= 1 or x == 0 else (f"${x:.4f}" if x >= 1e-4 else "<$0.0001")


def _count(n: float | None) -> str:
    """1234567 -> 1.23M, 45678 -> 45.7k."""
    if n is None:
        return "n/a"
    return next((f"{n / d:.3g}{u}" for d, u in ((1e9, "G"), (1e6, "M"), (1e3, "k")) if abs(n) >= d), f"{n:g}")


def _label(row: Row) -> str:
    backend = row.get("agent_backend")
    return f"{row.get('model')} \u00b7 {backend}" if backend else str(row.get("model"))


def _anchor(model: object, backend: object) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", f"{model}-{backend}").strip("-")[:48]
    digest = hashlib.sha1(f"{model}\x00{backend}".encode()).hexdigest()[:8]
    return f"cases-{slug}-{digest}"


def _cells(n: int, r: Row) -> list[tuple[str, Any]]:
    """(text, sort value) of each column of HEADERS but the model's; texts not yet escaped."""
    g = r.get
    lat = " / ".join(_num(g(f"latency_{q}"), ".1f") for q in ("p50", "p90", "p99")) + " s"
    left_out = f", {g('pass_k_instances_excluded')} inst. left out" if g("pass_k_instances_excluded") else ""
    k = "" if g("k") is None else f" (k={g('k')}{left_out})"
    return [
        (str(n), n), (g("rank") or "", g("rank")), (g("agent_backend") or "", g("agent_backend")),
        (_num(g("cases")), g("cases")),
        (_num(g("resolved")), g("resolved")), (_interval(r), g("resolve_rate")),
        (_pct(g("resolve_rate_completed")), g("resolve_rate_completed")),
        (_pct(g("run_fail_rate")), g("run_fail_rate")), (_pct(g("pass_at_1")), g("pass_at_1")),
        (_pct(g("pass_at_k")) + k, g("pass_at_k")), (_num(g("attempts_run")), g("attempts_run")),
        (_num(g("wall_s_median"), ".1f", " s"), g("wall_s_median")),
        (f"{_count(g('prompt_tokens'))} / {_count(g('completion_tokens'))}", g("prompt_tokens")),
        (_money(g("cost_usd")), g("cost_usd")), ("n/a" if g("latency_p50") is None else lat, g("latency_p50")),
    ]  # fmt: skip


def _table(rows: list[Row]) -> str:
    ths = "".join(f"<th{' class=l' if h in ('model', 'agent') else ''}>{_e(h)}</th>" for h in HEADERS)
    body = []
    for n, r in enumerate(rows, 1):
        model, href = _e(r.get("model")), _anchor(r.get("model"), r.get("agent_backend"))
        cells = [
            f'<td{" class=l" if i == 2 else ""} data-v="{_e("" if v is None else v)}">{_e(text)}</td>'
            for i, (text, v) in enumerate(_cells(n, r))
        ]
        link = f'<a href="#{href}">{model.replace("/", "/<wbr>")}</a>'
        cells.insert(1, f'<td class="l m" data-v="{model}">{link}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<div class="wide"><table id="leaderboard" class="sortable"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _text(x: float, y: float, text: str, anchor: str = "start", attrs: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{attrs}>{text}</text>'


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = "#e3e3e3") -> str:
    return f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}"/>'


def _bar_chart(rows: list[Row]) -> str:
    """Horizontal bars (resolve rate) with 95% interval whiskers, one per row, labels on the left."""
    labels = [_label(r) if len(_label(r)) <= 44 else f"{_label(r)[:16]}\u2026{_label(r)[-27:]}" for r in rows]
    x0, x1, step = min(max([len(s) for s in labels] + [10]) * 7 + 16, 330), 830, 26
    bottom = 10 + step * len(rows)

    def sx(v: float) -> float:
        return x0 + v * (x1 - x0)

    out = [f'<svg id="bars" width="900" height="{bottom + 34}" role="img" aria-label="resolve rates">']
    for t in range(0, 101, 20):
        out.append(
            _line(sx(t / 100), 10, sx(t / 100), bottom + 6)
            + _text(sx(t / 100), bottom + 22, f"{t}%", "middle")
        )
    for i, (r, label) in enumerate(zip(rows, labels, strict=True)):
        y, rate, lo, hi = (
            10 + i * step,
            r.get("resolve_rate"),
            r.get("resolve_rate_lo"),
            r.get("resolve_rate_hi"),
        )
        out.append(_text(x0 - 8, y + 17, f"<title>{_e(_label(r))}</title>{_e(label)}", "end"))
        if rate is None:
            out.append(_text(x0 + 4, y + 17, "n/a", attrs=' fill="#777"'))
            continue
        tip = f"<title>{_e(_interval(r))}</title>"
        out.append(
            f'<rect x="{x0}" y="{y + 5}" width="{sx(rate) - x0:.1f}" height="16" fill="#4c78a8">{tip}</rect>'
        )
        if lo is not None and hi is not None:
            a, b, m = sx(lo), sx(hi), y + 13
            path = f"M{a:.1f} {m}H{b:.1f}M{a:.1f} {m - 5}v10M{b:.1f} {m - 5}v10"
            out.append(f'<path d="{path}" stroke="#222" stroke-width="1.5" fill="none"/>')
        out.append(_text(sx(max(rate, rate if hi is None else hi)) + 6, y + 17, _pct(rate)))
    return "".join(out) + "</svg>"


def _cost_scale(
    costs: list[float], px0: float, px1: float
) -> tuple[Callable[[float], float], list[float], str]:
    """Log scale (decade ticks) when all costs are > 0 and span 20x or more, else linear from $0 (nice ticks)."""
    lo, hi = min(costs), max(costs)
    if lo > 0 and hi / lo >= 20:
        a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
        ticks, scale = [10.0**e for e in range(a, b + 1)], "log scale"

        def pos(c: float) -> float:
            return (math.log10(c) - a) / (b - a)
    else:
        raw = hi / 4 if hi > 0 else 0.25
        mag = 10.0 ** math.floor(math.log10(raw))
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw * (1 - 1e-9))
        ticks, scale = [step * i for i in range(max(math.ceil(hi / step - 1e-9), 1) + 1)], "linear scale"

        def pos(c: float) -> float:
            return c / ticks[-1]

    return (lambda c: px0 + pos(c) * (px1 - px0)), ticks, scale


def _scatter_frame(
    sx: Callable[[float], float], sy: Callable[[float], float], ticks: list[float], scale: str
) -> str:
    """Box, grid, tick labels and axis titles of the cost/rate plot (box 70..620 x 16..370)."""
    out = ['<rect x="70" y="16" width="550" height="354" fill="none" stroke="#ccc"/>']
    out += [_line(sx(t), 16, sx(t), 370) + _text(sx(t), 388, f"${t:,.4g}", "middle") for t in ticks]
    out += [
        _line(70, sy(v / 100), 620, sy(v / 100)) + _text(64, sy(v / 100) + 4, f"{v}%", "end")
        for v in range(0, 101, 25)
    ]
    out.append(_text(345, 414, f"total cost (USD, {scale})", "middle"))
    out.append('<text transform="translate(18 193) rotate(-90)" text-anchor="middle">resolve rate</text>')
    return "".join(out)


def _scatter(rows: list[Row]) -> str:
    """Cost vs resolve rate, numbered as in the table; Pareto front as a step line; unknown cost listed aside."""
    known = [(n, r) for n, r in enumerate(rows, 1) if r.get("cost_usd") is not None]
    pts = [(n, r) for n, r in known if r.get("resolve_rate") is not None]
    aside = "".join(f"<li>{_e(_label(r))}</li>" for r in rows if r.get("cost_usd") is None) or "<li>none</li>"
    if not pts:
        return f'<p class="note">No model has a known cost.</p><ul id="unknown-cost">{aside}</ul>'
    sx, ticks, scale = _cost_scale([r["cost_usd"] for _, r in pts], 84, 606)  # 14 px inside the box

    def sy(v: float) -> float:
        return 356 - v * 326

    front = pareto_front([(r["cost_usd"], r["resolve_rate"]) for _, r in pts])
    xy = [(sx(pts[i][1]["cost_usd"]), sy(pts[i][1]["resolve_rate"])) for i in front]
    steps = [f"{xy[0][0]:.1f},{xy[0][1]:.1f}"]
    steps += [f"{x:.1f},{py:.1f} {x:.1f},{y:.1f}" for (_, py), (x, y) in itertools.pairwise(xy)]
    out = ['<svg id="scatter" width="640" height="424" role="img" aria-label="cost vs resolve rate">']
    out.append(_scatter_frame(sx, sy, ticks, scale) + f'<polyline id="pareto" points="{" ".join(steps)}" ')
    out.append('fill="none" stroke="#e45756" stroke-width="2" stroke-dasharray="5 3"/>')
    items = []
    for i, (n, r) in enumerate(pts):
        on, cx, cy, cost = i in front, sx(r["cost_usd"]), sy(r["resolve_rate"]), _money(r["cost_usd"])
        tip = f"{_label(r)}: {cost}, {_interval(r)}" + (" (Pareto front)" if on else "")
        circle = f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="10" fill="{"#e45756" if on else "#4c78a8"}" stroke="#fff"/>'
        num = _text(cx, cy + 4, str(n), "middle", ' fill="#fff" font-size="11"')
        out.append(f'<g class="pt{" pareto" if on else ""}"><title>{_e(tip)}</title>{circle}{num}</g>')
        mark = " <strong>(Pareto front)</strong>" if on else ""
        items.append(f"<li value={n}>{_e(_label(r))}: {_e(cost)}, {_pct(r['resolve_rate'])}{mark}</li>")
    legend = f'<div style="flex:1;min-width:320px"><ol>{"".join(items)}</ol><p class="note">Red points, dashed step line: the Pareto front '
    legend += "(no other model costs less and resolves at least as much).</p>"
    legend += f'<h3>Unknown cost (not plotted)</h3><ul id="unknown-cost">{aside}</ul></div>'
    return f'<div class="row">{"".join(out)}</svg>{legend}</div>'


def _heat_cell(row: Row, repo: str) -> str:
    cell = (row.get("per_repo") or {}).get(repo) or {}
    rate = cell.get("rate")
    if not cell.get("cases") or rate is None:
        return '<td style="background:#eee;color:#888" title="no cases">\u2013</td>'
    bg = "".join(f"{round(a + (b - a) * rate):02x}" for a, b in ((247, 8), (251, 81), (255, 156)))
    tip = _e(f"{_label(row)} on {repo}: {cell.get('resolved')}/{cell['cases']}")
    style = f"background:#{bg};color:{'#fff' if rate > 0.55 else '#222'}"
    link = f'<a style="color:inherit" href="{_e(quote(pagekit.repo_page(repo)))}#{_anchor(row.get("model"), row.get("agent_backend"))}">'
    return f'<td style="{style}" title="{tip}">{link}{_pct(rate, 0)}<small>{_e(cell.get("resolved"))}/{_e(cell["cases"])}</small></a></td>'


def _heatmap(rows: list[Row]) -> str:
    """Models x repos, cell = resolve rate on a white-to-blue scale with its value; "–" where no cases."""
    repos = sorted({repo for r in rows for repo in (r.get("per_repo") or {})})
    if not repos:
        return '<p class="note">No per-repo data.</p>'
    head = "".join(f"<th>{_e(repo).replace('/', '/<wbr>')}</th>" for repo in repos)
    body = "".join(
        f'<tr><td class="l">{_e(_label(r))}</td>{"".join(_heat_cell(r, repo) for repo in repos)}</tr>'
        for r in rows
    )
    scale = '<div class="row note" style="gap:8px;margin-top:6px">0%<div class="scale"></div>100%</div>'
    return f'<table class="heat"><thead><tr><th class="l">model</th>{head}</tr></thead><tbody>{body}</tbody></table>{scale}'


def _href(path: str, run_dir: Path | None) -> str:
    """A link relative to the run folder (absolute artifact paths are made relative to run_dir)."""
    if os.path.isabs(path) and run_dir is not None:
        path = os.path.relpath(path, run_dir)
    return _e(quote(path))


def _case_row(rec: CaseRecord, run_dir: Path | None) -> str:
    traj = rec.artifacts.get("trajectory")
    traj_link = f'<a href="{_href(traj, run_dir)}">trajectory</a>' if traj else "\u2013"
    case_link = f'<a href="{_href(pagekit.case_page(rec.case_id), None)}">{_e(rec.case_id)}</a>'
    record = f'<a href="{_href(f"cases/{rec.case_id}.json", None)}">record</a> \u00b7 <a href="{_href(pagekit.instance_page(rec.instance_id), None)}">all models</a>'
    outcome = f'<td class="l o-{_e(rec.outcome)}">{_e(rec.outcome)}</td>'
    return f'<tr><td class="l">{case_link}</td>{outcome}<td class="l">{_e(rec.outcome_class)}</td><td class="l">{traj_link}</td><td class="l">{record}</td></tr>'


def _cases(rows: list[Row], records: list[CaseRecord], run_dir: Path | None) -> str:
    """One section per (model, backend): the rows' first, in order, then any only the records know."""
    groups: dict[tuple[Any, Any], list[CaseRecord]] = {
        (r.get("model"), r.get("agent_backend")): [] for r in rows
    }
    for rec in records:
        groups.setdefault((rec.model_id, rec.agent_backend), []).append(rec)
    head = "".join(f'<th class="l">{h}</th>' for h in ("case", "outcome", "class", "trajectory", "links"))
    out = []
    for (model, backend), recs in groups.items():
        counts = ", ".join(f"{n} {o}" for o, n in sorted(Counter(r.outcome for r in recs).items()))
        trs = "".join(_case_row(rec, run_dir) for rec in sorted(recs, key=lambda r: r.case_id))
        table = f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>" if recs else ""
        title = _e(f"{model} \u00b7 {backend}" if backend else model)
        note = f'<p class="note">{len(recs)} cases{": " + counts if counts else ""}</p>'
        out.append(f'<section id="{_anchor(model, backend)}"><h3>{title}</h3>{note}{table}</section>')
    return "".join(out)


def _quarantine_note(records: list[CaseRecord]) -> str:
    """Quarantined instances (skipped as excluded) are listed apart, never rated."""
    reasons = {r.instance_id: r.message for r in records if r.outcome_class == "excluded"}
    if not reasons:
        return ""
    items = "".join(f"<li><code>{_e(i)}</code>: {_e(m)}</li>" for i, m in sorted(reasons.items()))
    return (
        f'<h2>Quarantined instances ({len(reasons)})</h2><p class="note">Not in any rate above '
        f"(config/quarantine.yaml; --include-quarantined runs them).</p><ul>{items}</ul>"
    )


def render_html(
    rows: list[Row],
    records: list[CaseRecord],
    *,
    title: str,
    run_dir: Path | None,
    pairs: list[Row] | None = None,
) -> str:
    """The whole report as one HTML string; `rows` in the order to show (best first)."""
    sub = f"run folder {run_dir.name} \u00b7 " if run_dir is not None else ""
    sub += f"{len(rows)} leaderboard rows \u00b7 {len(records)} case records \u00b7 {INTERVALS}"
    head = (
        f'<meta charset="utf-8"><title>{_e(title)}</title>{JS_ERRORS}<style>{CSS}{html_pairwise.CSS}</style>'
    )
    parts = [
        f'<!doctype html><html lang="en"><head>{head}</head><body><h1>{_e(title)}</h1><p class="sub">{_e(sub)}</p>',
        '<h2>Leaderboard</h2><p class="note">Click a header to sort. Cost "unknown": no price is known.</p>',
        _table(rows),
        _quarantine_note(records),
        f"<h2>Resolve rate</h2>{_bar_chart(rows)}",
        f"<h2>Model vs model</h2>{html_pairwise.NOTE}{html_pairwise.pairwise_matrix(rows, pairs or [])}",
        f"<h2>Cost vs resolve rate</h2>{_scatter(rows)}",
        f"<h2>Resolve rate per repository</h2>{_heatmap(rows)}",
        f'<h2>Cases</h2><p class="note">Links are relative to the run folder.</p>{_cases(rows, records, run_dir)}',
        f"{JS_SORT}</body></html>\n",
    ]
    return "\n".join(parts)


def write_html(
    path: Path,
    rows: list[Row],
    records: list[CaseRecord],
    *,
    title: str,
    run_dir: Path | None = None,
    pairs: list[Row] | None = None,
) -> Path:
    """Write the report atomically (tmp + rename) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    from harness.results.records import write_text_atomic

    write_text_atomic(path, render_html(rows, records, title=title, run_dir=run_dir, pairs=pairs))
    return path
