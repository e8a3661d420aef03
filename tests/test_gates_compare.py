"""Exit gates and paired run comparison, on synthetic records and end to end on a demo run."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from dataclasses import asdict

import pytest
import yaml

from harness.config.loading import load_gates
from harness.config.schema import GateSpec
from harness.results.compare import compare_runs, format_comparison
from harness.results.gates import GateResult, evaluate_gates, format_gates
from harness.results.records import CaseRecord
from tests.helpers import ROOT, case_record, run_cli, run_evals


def grid(model_outcomes: dict[str, str]) -> list[CaseRecord]:
    """model -> string of r/u per instance, e.g. {'kimi': 'rru'}."""
    return [
        case_record(m, f"i{n}", "resolved" if ch == "r" else "unresolved", run_id="r")
        for m, s in model_outcomes.items()
        for n, ch in enumerate(s)
    ]


def one(spec: dict, records, **kw):
    (result,) = evaluate_gates(
        [GateSpec(**spec)],
        records,
        active_grids=kw.pop("grids", frozenset({"i1"})),
        cpu_samples=kw.pop("cpu", []),
        compare_to=kw.pop("other", None),
    )
    return result


BASELINE = {"name": "b", "kind": "baseline_ratio", "grids": ["i1"], "baseline": "empty", "exclude": ["gold"]}


def lead(resolved: int, n: int = 16, model: str = "kimi") -> dict[str, str]:
    return {model: "r" * resolved + "u" * (n - resolved)}


def test_baseline_ratio_a_weak_lead_fails() -> None:
    """Defect: 1/16 vs 0/16 passed ">= 1.5x" (infinite ratio), p=1 shown but unused."""
    result = one(BASELINE, grid({"empty": "u" * 16, **lead(1)}))
    assert result.status == "failed"
    assert "lead not significant: McNemar p=1, Holm p=1 over 1 model(s) (1 vs 0 discordant)" in result.detail
    assert result.value == pytest.approx(0.0556, abs=1e-3)  # lower bound 1.1% / upper bound 19.4%


def test_baseline_ratio_a_clear_lead_passes() -> None:
    result = one(BASELINE, grid({"empty": "u" * 16, **lead(12), "gold": "r" * 16}))
    assert result.status == "passed", result.detail
    assert "best kimi 75.0% [95% CI 49.7%" in result.detail and "vs empty 0.0% [0.0%-19.4%]" in result.detail
    assert result.value == pytest.approx(2.57, abs=0.01)  # on the interval, not 12/16 / 0 = infinity


def test_baseline_ratio_holds_on_the_interval_not_the_point_estimate() -> None:
    result = one(BASELINE, grid({"empty": "u" * 16, **lead(7)}))  # significant (p=0.016), 7/16 vs 0/16
    assert result.status == "failed" and "lead significant" in result.detail
    assert "= 1.17x, need >= 1.5x" in result.detail


def test_baseline_ratio_holm_adjusts_over_every_model_tried() -> None:
    strict = {**BASELINE, "alpha": 0.001}  # 12 vs 0 discordant: p = 0.00049
    assert one(strict, grid({"empty": "u" * 16, **lead(12)})).status == "passed"
    three = grid({"empty": "u" * 16, **lead(12), **lead(12, model="glm"), **lead(11, model="qwen")})
    result = one(strict, three)
    assert result.status == "failed" and "Holm p=0.00146 over 3 model(s)" in result.detail


def test_baseline_ratio_pairs_completed_cases_only() -> None:
    records = grid({"empty": "u" * 16, **lead(12)})
    for r in records[:8]:  # the baseline's first 8 cases: infra errors, not unresolved
        r.outcome, r.outcome_class = "error", "provider-error"
    result = one(BASELINE, records)
    assert "on 8 paired cases (8 instances)" in result.detail and "4 vs 0 discordant" in result.detail
    assert result.status == "failed"
    for r in records[:16]:
        r.outcome, r.outcome_class = "skipped", "budget"
    assert one(BASELINE, records).status == "not-applicable"
    assert one(BASELINE, grid({"kimi": "r"})).status == "not-applicable"
    assert (
        one(BASELINE, grid({"empty": "u", "kimi": "r"}), grids=frozenset({"demo"})).status == "not-applicable"
    )


def test_report_only_grids_report_without_failing() -> None:
    spec = {**BASELINE, "grids": ["demo", "i1"], "report_only": ["demo"]}
    weak = grid({"empty": "u" * 16, **lead(1)})
    result = one(spec, weak, grids=frozenset({"demo"}))
    assert result.status == "failed-report-only" and "report only on demo" in result.detail
    assert format_gates([result])[0].startswith("gate b: FAILED (report only) - best kimi")
    assert one(spec, weak, grids=frozenset({"demo", "i1"})).status == "failed"  # i1 is enforced
    assert one(spec, grid({"empty": "u" * 16, **lead(12)}), grids=frozenset({"demo"})).status == "passed"


def test_gate_values_are_json_even_when_infinite() -> None:
    assert GateResult("x", "passed", float("inf"), float("nan"), "").value is None
    results = evaluate_gates(
        load_gates(ROOT / "config" / "gates.yaml"),
        grid({"empty": "u" * 16, **lead(12)}),
        active_grids=frozenset({"i1"}),
        cpu_samples=[50.0] * 40,
    )
    json.dumps([asdict(r) for r in results], allow_nan=False)


def test_malformed_rate_and_min_models() -> None:
    records = grid({"kimi": "ruuu", "glm": "uuuu"})
    records[1].outcome_class = "malformed-patch"
    spec = {"name": "m", "kind": "class_rate", "classes": ["malformed-patch"], "max_rate": 0.1}
    result = one(spec, records)
    assert result.status == "failed" and result.value == pytest.approx(1 / 8)
    assert one({**spec, "max_rate": 0.2}, records).status == "passed"
    assert one({"name": "n", "kind": "min_models", "min_models": 3}, records).status == "failed"
    assert one({"name": "n", "kind": "min_models", "min_models": 2}, records).status == "passed"


def test_cpu_gate_needs_samples_and_judges_the_share_above_the_limit() -> None:
    """Defects: one sample at 100 % failed a 2-second run; 10 at 100 % and 3 at 0 % passed (mean 77 %)."""
    cpu = {"name": "c", "kind": "cpu", "max_percent": 80, "min_samples": 10, "max_share_above": 0.1}
    records = grid({"kimi": "r"})
    assert one(cpu, records, cpu=[100.0]).status == "not-applicable"
    assert one(cpu, records, cpu=[]).status == "not-applicable"
    gamed = one(cpu, records, cpu=[100.0] * 10 + [0.0] * 3)
    assert gamed.status == "failed" and gamed.value == pytest.approx(10 / 13, abs=1e-4)
    assert one(cpu, records, cpu=[90.0] + [50.0] * 9).status == "passed"  # 10 % above: allowed
    assert one(cpu, records, cpu=[90.0] * 2 + [50.0] * 8).status == "failed"
    (shown,) = evaluate_gates(
        [GateSpec(**cpu)],
        records,
        active_grids=frozenset({"i1"}),
        cpu_samples=[50.0] * 20,
        cpu_harness_samples=[10.0] * 19 + [90.0],
    )
    assert shown.status == "passed"
    assert "harness process tree mean 14.0%, 5% of its samples above" in shown.detail
    assert "machine: 0% of 20 samples above 80%" in shown.detail


def test_flip_rate_gate_against_a_rerun():
    a = grid({"kimi": "rrrr"})
    b = grid({"kimi": "rrru"})
    spec = {"name": "f", "kind": "flip_rate", "max_flip_rate": 0.2}
    assert one(spec, a, other=b).status == "failed"
    assert one({**spec, "max_flip_rate": 0.25}, a, other=b).status == "passed"
    assert one(spec, a).status == "not-applicable"


GLM_A = {"glm-4.5": "r" * 8 + "u" * 8, "glm-4.5-air": "r" * 16, "glm-4.5-air-or": "r" * 16}
GLM_B = {"glm-4.5": "u" * 16, "glm-4.5-air": "r" * 16, "glm-4.5-air-or": "r" * 16}


def test_flip_gate_matches_models_by_model_id_not_case_id_prefix():
    """Defect: glm-4.5 flipping 8/16 was pooled with glm-4.5-air(-or) into 17 % and passed the 25 % limit."""
    spec = {"name": "f", "kind": "flip_rate", "max_flip_rate": 0.25}
    result = one(spec, grid(GLM_A), other=grid(GLM_B))
    assert result.status == "failed" and result.value == 0.5
    assert "glm-4.5 50% of 16, glm-4.5-air 0% of 16, glm-4.5-air-or 0% of 16" in result.detail


def test_compare_runs_pairs_cases_and_lists_flips():
    a = grid({"kimi": "rrrrrrrrrr", "glm": "ruuu"})
    b = grid({"kimi": "uuuuuuuuuu", "glm": "ruuu"})
    b.append(case_record("extra", "i0", "resolved", run_id="r"))
    rows = {r.model: r for r in compare_runs(a, b)}
    assert set(rows) == {"kimi", "glm"}
    kimi = rows["kimi"]
    assert (kimi.paired_cases, kimi.rate_a, kimi.rate_b, kimi.delta) == (10, 1.0, 0.0, 1.0)
    assert kimi.mcnemar_p == pytest.approx(2 * 0.5**10) and kimi.flip_rate == 1.0
    assert rows["glm"].flips == [] and rows["glm"].mcnemar_p == 1.0
    text = format_comparison(list(rows.values()), "a", "b")
    assert "flip kimi: kimi-i0-a1 resolved -> unresolved" in text
    assert "+0.0% (no discordant pairs)" in text and "[95% CI +0.0%, +0.0%]" not in text


def test_compare_delta_is_per_case_like_the_rates_beside_it():
    """Defect: delta was per instance while the rates were per case (uneven attempts disagree)."""
    a = [
        case_record("kimi", "i0", "resolved", 1),
        case_record("kimi", "i0", "resolved", 2),
        case_record("kimi", "i0", "resolved", 3),
    ]
    a += [case_record("kimi", "i1", "unresolved", 1)]
    b = [case_record("kimi", "i0", "unresolved", n) for n in (1, 2, 3)] + [
        case_record("kimi", "i1", "resolved", 1)
    ]
    (row,) = compare_runs(a, b)
    assert (row.rate_a, row.rate_b) == (0.75, 0.25)
    assert row.delta == pytest.approx(row.rate_a - row.rate_b)  # per instance it would be 0.0
    assert row.delta_lo < row.delta < row.delta_hi


def test_compare_delta_interval_is_the_clustered_paired_interval():
    """The interval beside compare's delta is the paired interval clustered by instance (Bonett-Price on
    the effective sample size), pinned to its value for four +1, five 0 and one -1 instance."""
    a_outcomes, b_outcomes = "rrrrruuuuu", "uuuuruuuur"
    (row,) = compare_runs(grid({"kimi": a_outcomes}), grid({"kimi": b_outcomes}))
    assert row.delta == pytest.approx(0.3)
    assert (row.delta_lo, row.delta_hi) == pytest.approx((-0.185033, 0.675942), abs=1e-6)
    line = format_comparison([row], "a", "b").splitlines()[2]
    assert line.split() == [
        "kimi",
        "10",
        "50.0%",
        "20.0%",
        "+30.0%",
        "[95%",
        "CI",
        "-18.5%,",
        "+67.6%]",
        "0.375",
        "50%",
    ]


def test_the_shipped_gates_file_is_valid():
    names = [g.name for g in load_gates(ROOT / "config" / "gates.yaml")]
    assert names == ["baseline_ratio", "malformed_patches", "reproducibility", "cpu", "models_with_results"]


@pytest.mark.containers
def test_a_failing_gate_fails_the_session_and_shows_in_junit(fixture_images, tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    gates = yaml.safe_load((cfg / "gates.yaml").read_text())
    gates["gates"].append(
        {
            "name": "needs_two_models",
            "kind": "min_models",
            "grids": ["demo"],
            "exclude": ["empty"],
            "min_models": 2,
        }
    )
    (cfg / "gates.yaml").write_text(yaml.safe_dump(gates))
    junit = tmp_path / "junit.xml"
    args = [
        "-m",
        "demo",
        "--models",
        "gold,empty",
        "--harness-config",
        str(cfg),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]
    done = run_evals(*args, "--run-id", "gated", "--junitxml", str(junit))
    assert done.returncode == 1, done.stdout[-2000:]
    assert "gate needs_two_models: FAILED - 1 model(s) with results" in done.stdout
    cases = {
        c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase") if c.get("classname") == "gates"
    }
    assert cases["needs_two_models"].find("failure") is not None
    assert "baseline_ratio" not in cases  # not applicable (only baselines ran): no testcase
    manifest = json.loads((tmp_path / "runs" / "gated" / "manifest.json").read_text())
    assert {g["name"]: g["status"] for g in manifest["gates"]}["needs_two_models"] == "failed"
    assert manifest["grids"] == ["demo"]
    reported = run_evals(*args, "--run-id", "reported", "--no-gates")
    assert reported.returncode == 0 and "gate needs_two_models: FAILED" in reported.stdout
    cli = run_cli(
        "--config", str(cfg), "gates", str(tmp_path / "runs" / "gated"),
        "--compare-to", str(tmp_path / "runs" / "reported"),
    )  # fmt: skip
    assert cli.returncode == 1 and "gate reproducibility: PASSED" in cli.stdout
    compare = run_cli("compare", str(tmp_path / "runs" / "gated"), str(tmp_path / "runs" / "reported"))
    assert compare.returncode == 0, compare.stderr
    lines = compare.stdout.splitlines()
    assert (
        lines[0]
        == "paired comparison: a=gated  b=reported (cases completed in both; 95% CI clustered by instance)"
    )
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    # the demo baselines are deterministic: the same outcome on every paired case, no flip, no interval
    assert rows == {
        "empty": ["3", "0.0%", "0.0%", "+0.0%", "(no", "discordant", "pairs)", "1", "0%"],
        "gold": ["3", "100.0%", "100.0%", "+0.0%", "(no", "discordant", "pairs)", "1", "0%"],
    }


def _write_run(runs, run_id: str, models: dict[str, str], grids: list[str]):
    from harness.results.records import RunPaths, write_record

    paths = RunPaths(runs, run_id)
    for r in grid(models):
        write_record(paths, r)
    paths.manifest.write_text(json.dumps({"run_id": run_id, "grids": grids, "cpu_samples": [1.0] * 3}))
    return paths.root


def _gates_cli(*args):
    return run_cli("gates", *map(str, args))


def test_gates_cli_exit_status_on_synthetic_runs(tmp_path):
    runs = tmp_path / "runs"
    weak = _write_run(runs, "weak", {"empty": "u" * 16, **lead(1)}, ["i1"])
    done = _gates_cli(weak)
    assert done.returncode == 1 and "gate baseline_ratio: FAILED - best kimi 6.2%" in done.stdout
    clear = _write_run(runs, "clear", {"empty": "u" * 16, **lead(12)}, ["i1"])
    done = _gates_cli(clear)
    assert done.returncode == 0, done.stdout
    assert (
        "gate baseline_ratio: PASSED" in done.stdout
        and "gate cpu: NOT-APPLICABLE - 3 CPU samples" in done.stdout
    )
    demo = _gates_cli(weak, "--grids", "demo")
    assert demo.returncode == 0 and "gate baseline_ratio: FAILED (report only)" in demo.stdout
    first = _write_run(runs, "glm-a", GLM_A, ["i1"])
    rerun = _write_run(runs, "glm-b", GLM_B, ["i1"])
    flipped = _gates_cli(first, "--compare-to", rerun)
    assert (
        flipped.returncode == 1
        and "gate reproducibility: FAILED - flip rate per model: glm-4.5 50%" in flipped.stdout
    )
    assert _gates_cli(first, "--compare-to", first).returncode == 0
