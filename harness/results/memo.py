"""The validation memo of a run: what a person checks and signs off before trusting the results.

Written at the end of every run as runs/<run_id>/memo.md and as the first section of leaderboard.html
(the plan asks for human validation at i1). Built from the records and the manifest only, so
`python -m harness leaderboard RUN` rebuilds it. Sections: summary, gates, infrastructure errors,
quarantined and suspect instances (the gold patch failing one), integrity flags, outliers in cost and
time (Tukey's far-out fence, Q3 + 3 IQR, per model, from 5 cases), versions and images (mixed values are
flagged), what changed since the run compared against (--compare-to), and the sign-off checklist.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.outcomes import Outcome, OutcomeClass
from harness.results import pagekit as k
from harness.results.compare import compare_runs
from harness.results.records import CaseRecord, RunPaths
from harness.results.stats import percentiles

MAX_ITEMS = 12
"""Cases listed per section; the rest are counted ("... and N more")."""
MIN_OUTLIER_CASES = 5
STATUS = {"failed-report-only": "FAILED (report only)"}
MEMO_START, MEMO_END = '<section id="memo">', "</section><!-- /memo -->"


@dataclass
class Item:
    text: str
    link: str | None = None
    """A path relative to the run folder (a case page)."""


@dataclass
class Section:
    title: str
    note: str = ""
    items: list[Item] = field(default_factory=list)


def _cases(recs: list[CaseRecord], describe) -> list[Item]:
    items = [Item(f"{r.case_id}: {describe(r)}", k.case_page(r.case_id)) for r in recs[:MAX_ITEMS]]
    return items + ([Item(f"... and {len(recs) - MAX_ITEMS} more")] if len(recs) > MAX_ITEMS else [])


def _summary(records: list[CaseRecord], manifest: dict[str, Any]) -> Section:
    outcomes = Counter(str(r.outcome) for r in records)
    budget = manifest.get("budget") or {}
    items = [
        Item(f"{len(records)} cases of {len({r.model_id for r in records})} model(s) on "
             f"{len({r.instance_id for r in records})} instance(s); grids {', '.join(manifest.get('grids') or []) or 'n/a'}"),
        Item("outcomes: " + (", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())) or "none")),
        Item(f"wall time {manifest.get('wall_s', 'n/a')} s; LLM requests {sum(r.telemetry.calls for r in records)}; "
             f"spent ${budget.get('spent_usd', 0.0):.4f} (budget ledger)"
             + (f", {budget['unknown_cost_calls']} request(s) with unknown price" if budget.get("unknown_cost_calls") else "")),
    ]  # fmt: skip
    return Section("Summary", items=items)


def _gates(manifest: dict[str, Any]) -> Section:
    gates = [g for g in manifest.get("gates") or [] if g.get("status") != "not-applicable"]
    items = [
        Item(
            f"{STATUS.get(g.get('status'), str(g.get('status', '')).upper())} {g.get('name')}: {g.get('detail', '')}"
        )
        for g in gates
    ]
    return Section("Gates", "" if gates else "no gate applies to this run's grids", items)


def _infra(records: list[CaseRecord]) -> Section:
    errors = [r for r in records if r.outcome == Outcome.ERROR]
    counts = Counter(r.outcome_class for r in errors)
    note = ", ".join(f"{n} {c}" for c, n in counts.most_common()) if errors else "none"
    if errors:
        note += f" - not the models' fault; re-run them with --resume {errors[0].run_id}"
    return Section("Infrastructure errors", note, _cases(errors, lambda r: f"{r.outcome_class}: {r.message}"))


def _instances(records: list[CaseRecord]) -> Section:
    quarantined = {r.instance_id: r.message for r in records if r.outcome_class == OutcomeClass.EXCLUDED}
    items = [Item(f"quarantined {i}: {m}", k.instance_page(i)) for i, m in sorted(quarantined.items())]
    gold = [r for r in records if r.model_id == "gold" and r.completed and not r.resolved]
    items += [
        Item(f"suspect {r.instance_id}: the gold patch did not resolve it ({r.outcome_class}); calibrate it",
             k.case_page(r.case_id))
        for r in gold
    ]  # fmt: skip
    note = "" if items else "none quarantined; no gold failure"
    return Section("Quarantined and suspect instances", note, items)


def _integrity(records: list[CaseRecord]) -> Section:
    flagged = [r for r in records if r.integrity]
    counts = Counter(f for r in flagged for f in r.integrity)
    note = ", ".join(f"{n} {f}" for f, n in counts.most_common()) if flagged else "no patch flagged"
    return Section("Integrity flags", note, _cases(flagged, lambda r: ", ".join(r.integrity)))


def _far_out(values: dict[str, float]) -> tuple[float, list[str]] | None:
    """(fence, keys above it): Tukey's far-out fence Q3 + 3 IQR; None with fewer than MIN_OUTLIER_CASES values."""
    if len(values) < MIN_OUTLIER_CASES:
        return None
    q = percentiles(list(values.values()), (25, 75))
    fence = q["p75"] + 3 * (q["p75"] - q["p25"])  # type: ignore[operator]
    return fence, sorted((key for key, v in values.items() if v > fence), key=lambda key: -values[key])


METRICS = {
    "cost": (lambda r: r.telemetry.cost_usd, lambda v: f"${v:.4f}"),
    "case time": (lambda r: r.own_wall_s if r.outcome != Outcome.SKIPPED else None, lambda v: f"{v:.1f} s"),
    "slowest LLM request": (lambda r: max(r.telemetry.latencies_s, default=None), lambda v: f"{v:.2f} s"),
}


def _outliers(records: list[CaseRecord]) -> Section:
    by_model: dict[str, list[CaseRecord]] = defaultdict(list)
    for r in records:
        by_model[r.model_id].append(r)
    items, small = [], []
    for model, recs in sorted(by_model.items()):
        for metric, (value_of, fmt) in METRICS.items():
            values = {r.case_id: v for r in recs if (v := value_of(r)) is not None}
            found = _far_out(values)
            if found is None:
                if values and model not in small:
                    small.append(model)
                continue
            fence, keys = found
            items += [Item(f"{key}: {metric} {fmt(values[key])} (model {model}: fence {fmt(fence)})", k.case_page(key))
                      for key in keys[:MAX_ITEMS]]  # fmt: skip
    note = "cases above Q3 + 3 IQR of their model's cases" + ("" if items else ": none")
    if small:
        note += f"; fewer than {MIN_OUTLIER_CASES} cases, not checked: {', '.join(small)}"
    return Section("Outliers in cost and time", note, items)


def _distinct(records: list[CaseRecord], value_of) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for r in records:
        for key, value in value_of(r).items():
            if value:
                seen[key].add(str(value))
    return seen


def _images(records: list[CaseRecord]) -> dict[str, set[str]]:
    return _distinct(
        records, lambda r: {r.dataset.get("image", ""): r.image_digest} if r.image_digest else {}
    )


def _versions(records: list[CaseRecord], manifest: dict[str, Any]) -> Section:
    versions = manifest.get("versions") or {}
    items = [Item(", ".join(f"{name} {v}" for name, v in versions.items()))] if versions else []
    lock = manifest.get("dataset_lock") or {}
    if lock:
        items.append(
            Item(
                f"dataset {lock.get('hf_repo')}@{str(lock.get('revision'))[:12]}; config {manifest.get('config_hash', 'n/a')}"
            )
        )
    seen = _distinct(records, lambda r: {**r.versions, "config hash": r.config_hash})
    mixed = {name: vs for name, vs in seen.items() if len(vs) > 1}
    items += [
        Item(f"MIXED {name}: {', '.join(sorted(vs))} (cases of one run ran on different versions)")
        for name, vs in mixed.items()
    ]
    images = _images(records)
    changed = {i: ds for i, ds in images.items() if len(ds) > 1}
    items.append(
        Item(
            f"{len(images)} instance image(s) with a recorded digest"
            + (f"; {len(changed)} changed during the run" if changed else "")
        )
    )
    items += [Item(f"MIXED image {i}: {', '.join(sorted(ds))}") for i, ds in changed.items()]
    return Section("Versions and images", items=items)  # fmt: skip


def _changes(records: list[CaseRecord], compare: tuple[str, list[CaseRecord]] | None) -> Section:
    if compare is None:
        return Section(
            "Changes since the run compared against", "no run compared against (--compare-to RUN_ID)"
        )
    other_id, other = compare
    items = []
    mine, theirs = _distinct(records, lambda r: r.versions), _distinct(other, lambda r: r.versions)
    for name in sorted(set(mine) | set(theirs)):
        if mine.get(name) != theirs.get(name):
            items.append(
                Item(
                    f"{name}: {', '.join(sorted(theirs.get(name, {'-'})))} -> {', '.join(sorted(mine.get(name, {'-'})))}"
                )
            )
    if {r.config_hash for r in records} != {r.config_hash for r in other}:
        items.append(Item("config changed (config hash differs)"))
    before, now = _images(other), _images(records)
    items += [
        Item(f"image {i} changed: {', '.join(sorted(before[i]))} -> {', '.join(sorted(now[i]))}")
        for i in sorted(set(before) & set(now))
        if before[i] != now[i]
    ]
    note = "" if items else "versions, config and instance images unchanged"
    if not items and not compare_runs(records, other):
        note += "; no model has cases completed in both runs"
    for c in compare_runs(records, other):
        items.append(
            Item(
                f"{c.model}: {c.rate_b:.1%} -> {c.rate_a:.1%} on {c.paired_cases} paired cases "
                f"(delta {c.delta:+.1%} [{c.delta_lo:+.1%}, {c.delta_hi:+.1%}], McNemar p={c.mcnemar_p:.3g}), {len(c.flips)} flip(s)"
            )
        )
        items += [Item(f"flip {cid}: {b} -> {a}", k.case_page(cid)) for cid, a, b in c.flips[:MAX_ITEMS]]
    return Section(f"Changes since run {other_id}", note, items)


SIGN_OFF = [
    "the gates above are read and their failures understood",
    "every infrastructure error is explained or re-run (--resume)",
    "suspect and quarantined instances are acceptable (python -m harness calibrate)",
    "integrity-flagged patches are opened and judged",
    "outliers in cost and time are explained",
    "versions and images are the intended ones; changes since the compared run are expected",
]


def build_memo(
    records: list[CaseRecord], manifest: dict[str, Any], compare: tuple[str, list[CaseRecord]] | None = None
) -> list[Section]:
    return [
        _summary(records, manifest), _gates(manifest), _infra(records), _instances(records),
        _integrity(records), _outliers(records), _versions(records, manifest), _changes(records, compare),
        Section("Sign-off", "tick each line, then sign", [Item(f"[ ] {line}") for line in SIGN_OFF]
                + [Item("signed: ______________________  date: ____________")]),
    ]  # fmt: skip


def memo_markdown(run_id: str, sections: list[Section]) -> str:
    out = [f"# Validation memo: run {run_id}", ""]
    for s in sections:
        out += [f"## {s.title}", ""] + ([s.note, ""] if s.note else [])
        out += [f"- {i.text}" + (f" ([page]({i.link}))" if i.link else "") for i in s.items]
        out += [""] if s.items else []
    return "\n".join(out)


def memo_html(run_id: str, sections: list[Section]) -> str:
    """The memo as the leaderboard page's first section (links relative to the run folder)."""
    out = [
        f"{MEMO_START}<h2>Validation memo</h2><details open><summary>what to check and sign off before trusting "
        f'these results (also in <a href="memo.md">memo.md</a>; run {k.esc(run_id)})</summary>'
    ]
    for s in sections:
        items = "".join(
            f"<li>{k.esc(i.text)}" + (f' <a href="{k.href(i.link)}">page</a>' if i.link else "") + "</li>"
            for i in s.items
        )
        note = f'<p class="note">{k.esc(s.note)}</p>' if s.note else ""
        out.append(f"<h3>{k.esc(s.title)}</h3>{note}" + (f"<ul>{items}</ul>" if items else ""))
    return "".join(out) + "</details>" + MEMO_END


def embed_in_report(report: Path, section: str) -> None:
    """Put the memo section first in leaderboard.html (before its first <h2>), replacing an earlier memo."""
    if not report.is_file():
        return
    html = report.read_text(encoding="utf-8")
    html = re.sub(re.escape(MEMO_START) + ".*?" + re.escape(MEMO_END), "", html, flags=re.S)
    at = html.find("<h2")
    html = html[:at] + section + "\n" + html[at:] if at >= 0 else html.replace("</body>", section + "</body>")
    tmp = report.with_name(f".{report.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(report)


def write_memo(
    paths: RunPaths,
    records: list[CaseRecord],
    manifest: dict[str, Any],
    compare: tuple[str, list[CaseRecord]] | None = None,
) -> Path:
    """runs/<run_id>/memo.md, and the same memo as the first section of leaderboard.html."""
    sections = build_memo(records, manifest, compare)
    path = paths.root / "memo.md"
    tmp = path.with_name(".memo.md.tmp")
    tmp.write_text(memo_markdown(paths.run_id, sections), encoding="utf-8")
    tmp.replace(path)
    embed_in_report(paths.root / "leaderboard.html", memo_html(paths.run_id, sections))
    return path
