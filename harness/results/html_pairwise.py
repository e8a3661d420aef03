"""The pairwise section of the HTML report: a models x models matrix of pairwise.csv.

Cell (row A, column B): A's rate minus B's on their paired cases, its 95 % interval (clustered by
instance) and the Holm-adjusted McNemar p; green where A is significantly better, red where worse,
grey where the two have no paired case. The tooltip gives the counts behind it.
"""

from __future__ import annotations

from html import escape
from typing import Any

Row = dict[str, Any]


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _label(model: object, backend: object) -> str:
    return f"{model} \u00b7 {backend}" if backend else str(model)


def _oriented(pair: Row, flip: bool) -> Row:
    """The pair seen from model b's side when `flip`: delta and bounds negated, counts swapped."""
    if not flip or "delta" not in pair:
        return pair
    return {
        **pair,
        "delta": -pair["delta"],
        "delta_lo": -pair["delta_hi"],
        "delta_hi": -pair["delta_lo"],
        "a_only": pair["b_only"],
        "b_only": pair["a_only"],
    }


def _cell(pair: Row | None, flip: bool) -> str:
    if pair is None or "delta" not in pair:
        return '<td class="pw-none" title="no paired case">\u2013</td>'
    p = _oriented(pair, flip)
    if p["a_only"] == 0 and p["b_only"] == 0:
        detail = "no discordant pairs"
    else:
        detail = f"[{p['delta_lo'] * 100:+.0f}, {p['delta_hi'] * 100:+.0f}] p={p['p_holm']:.2g}"
    significant = p.get("significant") and p["delta"] != 0
    cls = ("pw-better" if p["delta"] > 0 else "pw-worse") if significant else "pw-tie"
    tip = (
        f"{p['paired_cases']} paired cases on {p['instances']} instances; row only {p['a_only']}, "
        f"column only {p['b_only']}; McNemar p={p['p_value']:.3g}, Holm p={p['p_holm']:.3g}"
    )
    return f'<td class="{cls}" title="{_e(tip)}">{p["delta"] * 100:+.1f}%<small>{_e(detail)}</small></td>'


def pairwise_matrix(rows: list[Row], pairs: list[Row]) -> str:
    """The matrix in leaderboard order, or a note when there are fewer than two models."""
    keys = [(r.get("model"), r.get("agent_backend")) for r in rows]
    if len(keys) < 2:
        return '<p class="note">Fewer than two models: nothing to compare.</p>'
    index = {((p["model_a"], p["agent_backend_a"]), (p["model_b"], p["agent_backend_b"])): p for p in pairs}
    head = "".join(f"<th>{_e(_label(*k))}</th>" for k in keys)
    body = []
    for a in keys:
        cells = []
        for b in keys:
            if a == b:
                cells.append('<td class="pw-self">\u2014</td>')
            elif (a, b) in index:
                cells.append(_cell(index[(a, b)], flip=False))
            else:
                cells.append(_cell(index.get((b, a)), flip=True))
        body.append(f'<tr><td class="l">{_e(_label(*a))}</td>{"".join(cells)}</tr>')
    return (
        f'<table id="pairwise" class="pw"><thead><tr><th class="l">row minus column</th>{head}</tr>'
        f"</thead><tbody>{''.join(body)}</tbody></table>"
    )


CSS = (
    ".pw td{text-align:center;min-width:64px}.pw td.l{text-align:left}.pw small{display:block;font-size:10px}"
    ".pw-better{background:#d3f0d8}.pw-worse{background:#f8d7da}.pw-tie{background:#fff}"
    ".pw-none,.pw-self{background:#eee;color:#888}"
)
NOTE = (
    "<p class=\"note\">Each cell: the row model's resolve rate minus the column model's on the cases both "
    "completed (same instance and attempt), its 95% interval in points (clustered by instance) and the "
    "exact McNemar p, Holm-adjusted over all pairs. Green/red: significant at 0.05. Also in pairwise.csv.</p>"
)
