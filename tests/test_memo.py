"""The validation memo: each section finds what it must (and says none when there is nothing), and it lands
as memo.md and as the first section of leaderboard.html."""

from __future__ import annotations

from pathlib import Path

from harness.results.memo import MEMO_START, build_memo, embed_in_report, memo_markdown, write_memo
from harness.results.records import CaseRecord, RunPaths, Telemetry

VERSIONS = {"harness": "0.1.0", "swebench": "4.1.0"}


def _rec(case_id: str, model: str = "m", instance: str = "i-1", **extra) -> CaseRecord:
    fields = dict(
        run_id="r1", case_id=case_id, model_id=model, provider=None, litellm_id=None, instance_id=instance,
        repo="o/r", split="test", attempt=1, agent_backend="mini-swe-agent", outcome="resolved",
        outcome_class="resolved", versions=VERSIONS, config_hash="sha256:a", case_wall_s=10.0,
        dataset={"image": f"swebench/{instance}:latest"}, image_digest=f"sha256:{instance}",
    )  # fmt: skip
    fields.update(extra)
    return CaseRecord(**fields)


def _section(sections, title: str):
    return next(s for s in sections if s.title.startswith(title))


def _texts(section) -> list[str]:
    return [i.text for i in section.items]


MANIFEST = {
    "grids": ["i1"],
    "versions": VERSIONS,
    "gates": [
        {"name": "baseline_ratio", "status": "failed", "detail": "lead not significant"},
        {"name": "cpu", "status": "not-applicable", "detail": "-"},
        {"name": "malformed_patches", "status": "failed-report-only", "detail": "2/8"},
    ],
    "budget": {"spent_usd": 1.25, "unknown_cost_calls": 3},
    "wall_s": 99.0,
}


def test_a_clean_run_says_none_everywhere():
    records = [_rec(f"m-i-{n}-a1", instance=f"i-{n}") for n in range(3)]
    sections = build_memo(records, {"versions": VERSIONS})
    assert _section(sections, "Infrastructure errors").note == "none"
    assert _section(sections, "Integrity flags").note == "no patch flagged"
    assert _section(sections, "Quarantined").note == "none quarantined; no gold failure"
    assert "fewer than 5 cases, not checked: m" in _section(sections, "Outliers").note
    assert _section(sections, "Gates").note == "no gate applies to this run's grids"
    assert "no run compared against" in _section(sections, "Changes").note
    assert "3 instance image(s) with a recorded digest" in _texts(_section(sections, "Versions"))[-1]


def test_problems_are_found_and_linked():
    usual = [Telemetry(cost_usd=0.10 + n / 1000, latencies_s=[0.5, 1.0 + n / 10]) for n in range(8)]
    records = [_rec(f"m-i-{n}-a1", instance=f"i-{n}", telemetry=usual[n]) for n in range(8)]
    records += [
        _rec("m-i-9-a1", instance="i-9", telemetry=Telemetry(cost_usd=4.0, latencies_s=[0.5, 90.0])),
        _rec("m-i-10-a1", instance="i-10", outcome="error", outcome_class="container-error", message="daemon gone"),
        _rec("m-i-11-a1", instance="i-11", integrity=["edits-tests", "forged-test-output"]),
        _rec("gold-i-12-a1", model="gold", instance="i-12", outcome="unresolved", outcome_class="unresolved"),
        _rec("m-i-13-a1", instance="i-13", outcome="skipped", outcome_class="excluded", message="quarantined (flaky)"),
        _rec("m-i-14-a1", instance="i-14", versions={**VERSIONS, "swebench": "4.0.0"}),
        _rec("m-i-1-a2", instance="i-1", attempt=2, image_digest="sha256:other"),
    ]  # fmt: skip
    sections = build_memo(records, MANIFEST)
    gates = _texts(_section(sections, "Gates"))
    assert gates == [
        "FAILED baseline_ratio: lead not significant",
        "FAILED (report only) malformed_patches: 2/8",
    ]
    infra = _section(sections, "Infrastructure errors")
    assert infra.note.startswith("1 container-error") and "--resume r1" in infra.note
    assert infra.items[0].link == "pages/case-m-i-10-a1.html"
    instances = _texts(_section(sections, "Quarantined"))
    assert any(t.startswith("quarantined i-13: quarantined (flaky)") for t in instances)
    assert any(t.startswith("suspect i-12: the gold patch did not resolve it") for t in instances)
    assert _section(sections, "Integrity flags").note == "1 edits-tests, 1 forged-test-output"
    outliers = _texts(_section(sections, "Outliers"))
    assert any(t.startswith("m-i-9-a1: cost $4.0000") for t in outliers)
    assert any(t.startswith("m-i-9-a1: slowest LLM request 90.00 s") for t in outliers)
    assert not any("m-i-1-a1" in t for t in outliers)
    versions = _texts(_section(sections, "Versions"))
    assert "MIXED swebench: 4.0.0, 4.1.0 (cases of one run ran on different versions)" in versions
    assert "MIXED image swebench/i-1:latest: sha256:i-1, sha256:other" in versions
    summary = _texts(_section(sections, "Summary"))
    assert "spent $1.2500 (budget ledger), 3 request(s) with unknown price" in summary[2]


def test_changes_since_the_compared_run():
    before = [_rec(f"m-i-{n}-a1", instance=f"i-{n}") for n in range(4)]
    after = [
        r.model_copy(update={"run_id": "r2", "versions": {**VERSIONS, "swebench": "4.1.1"}}) for r in before
    ]
    after[0] = after[0].model_copy(
        update={"outcome": "unresolved", "outcome_class": "unresolved", "config_hash": "b"}
    )
    after[1] = after[1].model_copy(update={"image_digest": "sha256:new"})
    changes = _section(build_memo(after, {}, ("r1", before)), "Changes since run r1")
    texts = _texts(changes)
    assert "swebench: 4.1.0 -> 4.1.1" in texts and "config changed (config hash differs)" in texts
    assert "image swebench/i-1:latest changed: sha256:i-1 -> sha256:new" in texts
    assert any(t.startswith("m: 100.0% -> 75.0% on 4 paired cases") and "1 flip(s)" in t for t in texts)
    assert "flip m-i-0-a1: resolved -> unresolved" in texts
    same = _section(build_memo(before, {}, ("r0", before)), "Changes since run r0")
    assert same.note == "versions, config and instance images unchanged"
    assert _texts(same) == [
        "m: 100.0% -> 100.0% on 4 paired cases (delta +0.0% [-46.2%, +46.2%], McNemar p=1), 0 flip(s)"
    ]


def test_memo_file_and_first_section_of_the_report(tmp_path: Path):
    paths = RunPaths(tmp_path, "r1")
    paths.root.mkdir()
    report = paths.root / "leaderboard.html"
    report.write_text("<html><body><h1>t</h1><p>sub</p><h2>Leaderboard</h2><table></table></body></html>")
    records = [_rec("m-i-1-a1", message="<script>x</script>", outcome="error", outcome_class="agent-crash")]
    write_memo(paths, records, MANIFEST)
    write_memo(paths, records, MANIFEST)  # a rebuild replaces the memo, never stacks a second one
    html = report.read_text()
    assert html.count(MEMO_START) == 1 and html.index(MEMO_START) < html.index("<h2>Leaderboard")
    assert "<script>x" not in html and "&lt;script&gt;x" in html
    assert '<a href="pages/case-m-i-1-a1.html">page</a>' in html
    memo = (paths.root / "memo.md").read_text()
    assert memo.startswith("# Validation memo: run r1") and "## Sign-off" in memo
    assert "(pages/case-m-i-1-a1.html)" in memo
    assert memo == memo_markdown("r1", build_memo(records, MANIFEST))
    embed_in_report(paths.root / "missing.html", "x")  # no report yet: nothing to do
