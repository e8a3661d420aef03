"""Exit gates and paired run comparison, on synthetic records and end to end on a demo run."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import pytest
import yaml

from harness.config.loading import load_gates
from harness.config.schema import GateSpec
from harness.results.compare import compare_runs, format_comparison
from harness.results.gates import evaluate_gates
from harness.results.records import CaseRecord
from tests.helpers import ROOT, case_record, distribution_quantiles, run_cli, run_evals


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


def test_baseline_ratio_reports_interval_and_mcnemar():
    spec = {"name": "b", "kind": "baseline_ratio", "grids": ["i1"], "baseline": "empty", "exclude": ["gold"]}
    result = one(spec, grid({"empty": "ruuuuuuuuu", "kimi": "rrrruuuuuu", "gold": "rrrrrrrrrr"}))
    assert result.status == "passed" and result.value == pytest.approx(4.0)
    assert (
        "best kimi 40.0% [95% CI 16.8%-68.7%]" in result.detail and "McNemar p=0.25 (3 vs 0" in result.detail
    )
    assert (
        one(spec, grid({"empty": "rruuuuuuuu", "kimi": "rrruuuuuuu"})).status == "passed"
    )  # 30% = 1.5 x 20%
    failing = one(spec, grid({"empty": "rruuuuuuuu", "kimi": "urruuuuuuu"}))
    assert failing.status == "failed" and "McNemar p=1 (1 vs 1" in failing.detail  # 20% < 1.5 x 20%
    assert one(spec, grid({"kimi": "r"})).status == "not-applicable"
    assert one(spec, grid({"empty": "u", "kimi": "r"}), grids=frozenset({"demo"})).status == "not-applicable"


def test_malformed_rate_and_min_models_and_cpu():
    records = grid({"kimi": "ruuu", "glm": "uuuu"})
    records[1].outcome_class = "malformed-patch"
    spec = {"name": "m", "kind": "class_rate", "classes": ["malformed-patch"], "max_rate": 0.1}
    result = one(spec, records)
    assert result.status == "failed" and result.value == pytest.approx(1 / 8)
    assert one({**spec, "max_rate": 0.2}, records).status == "passed"
    assert one({"name": "n", "kind": "min_models", "min_models": 3}, records).status == "failed"
    assert one({"name": "n", "kind": "min_models", "min_models": 2}, records).status == "passed"
    cpu = {"name": "c", "kind": "cpu", "max_percent": 80}
    assert one(cpu, records, cpu=[70, 90, 95]).status == "failed"
    assert one(cpu, records, cpu=[70, 80, 85]).status == "passed"  # mean 78.3
    assert one(cpu, records, cpu=[]).status == "not-applicable"


def test_flip_rate_gate_against_a_rerun():
    a = grid({"kimi": "rrrr"})
    b = grid({"kimi": "rrru"})
    spec = {"name": "f", "kind": "flip_rate", "max_flip_rate": 0.2}
    assert one(spec, a, other=b).status == "failed"
    assert one({**spec, "max_flip_rate": 0.25}, a, other=b).status == "passed"
    assert one(spec, a).status == "not-applicable"


def test_compare_runs_pairs_cases_and_lists_flips():
    a = grid({"kimi": "rrrrrrrrrr", "glm": "ruuu"})
    b = grid({"kimi": "uuuuuuuuuu", "glm": "ruuu"})
    b.append(case_record("extra", "i0", "resolved", run_id="r"))
    rows = {r.model: r for r in compare_runs(a, b, n_boot=500)}
    assert set(rows) == {"kimi", "glm"}
    kimi = rows["kimi"]
    assert (kimi.paired_cases, kimi.rate_a, kimi.rate_b, kimi.delta) == (10, 1.0, 0.0, 1.0)
    assert kimi.mcnemar_p == pytest.approx(2 * 0.5**10) and kimi.flip_rate == 1.0
    assert rows["glm"].flips == [] and rows["glm"].mcnemar_p == 1.0
    text = format_comparison(list(rows.values()), "a", "b")
    assert "flip kimi: kimi-i0-a1 resolved -> unresolved" in text


def _exact_bootstrap_quantiles(diffs: list[int], qs: tuple[float, float]) -> list[float]:
    """Quantiles of the exact bootstrap distribution of mean(diffs): m draws with replacement, by convolution."""
    m = len(diffs)
    dist = {0: 1.0}
    for _ in range(m):
        step: dict[int, float] = {}
        for total, p in dist.items():
            for d in diffs:
                step[total + d] = step.get(total + d, 0.0) + p / m
        dist = step
    return distribution_quantiles({total / m: p for total, p in dist.items()}, qs)


def test_compare_delta_interval_is_the_paired_bootstrap_of_the_per_instance_differences():
    a_outcomes, b_outcomes = "rrrrruuuuu", "uuuuruuuur"  # per instance a - b: four +1, five 0, one -1
    (row,) = compare_runs(grid({"kimi": a_outcomes}), grid({"kimi": b_outcomes}), n_boot=4000, seed=3)
    diffs = [int(x == "r") - int(y == "r") for x, y in zip(a_outcomes, b_outcomes, strict=True)]
    assert row.delta == pytest.approx(0.3)
    exact = _exact_bootstrap_quantiles(diffs, (0.025, 0.975))
    assert exact == pytest.approx([-0.1, 0.7])
    # 4000 replicates put the percentiles on the exact bootstrap quantiles (the mean lives on a 1/10 grid)
    assert (row.delta_lo, row.delta_hi) == pytest.approx(exact, abs=1e-9)
    line = format_comparison([row], "a", "b").splitlines()[2]
    assert line.split() == ["kimi", "10", "50.0%", "20.0%", "+30.0%", "[-10.0%,", "+70.0%]", "0.375", "50%"]


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
    assert lines[0] == "paired comparison: a=gated  b=reported"
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:]}
    # the demo baselines are deterministic: the same outcome on every paired case, no flip
    assert rows == {
        "empty": ["3", "0.0%", "0.0%", "+0.0%", "[+0.0%,", "+0.0%]", "1", "0%"],
        "gold": ["3", "100.0%", "100.0%", "+0.0%", "[+0.0%,", "+0.0%]", "1", "0%"],
    }
