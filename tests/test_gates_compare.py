"""Exit gates and paired run comparison, on synthetic records and end to end on a demo run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
import yaml

from harness.config.loading import load_gates
from harness.config.schema import GateSpec
from harness.results.compare import compare_runs, format_comparison
from harness.results.gates import evaluate_gates
from harness.results.records import CaseRecord
from tests.conftest import ROOT


def rec(model: str, instance: str, outcome: str, attempt: int = 1, cls: str | None = None) -> CaseRecord:
    return CaseRecord(
        run_id="r",
        case_id=f"{model}-{instance}-a{attempt}",
        model_id=model,
        provider=None,
        litellm_id=None,
        instance_id=instance,
        repo="o/r",
        split="dev",
        attempt=attempt,
        agent_backend="mini",
        outcome=outcome,
        outcome_class=cls or outcome,
    )  # type: ignore[arg-type]


def grid(model_outcomes: dict[str, str]) -> list[CaseRecord]:
    """model -> string of r/u per instance, e.g. {'kimi': 'rru'}."""
    return [
        rec(m, f"i{n}", "resolved" if ch == "r" else "unresolved")
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
    b.append(rec("extra", "i0", "resolved"))
    rows = {r.model: r for r in compare_runs(a, b, n_boot=500)}
    assert set(rows) == {"kimi", "glm"}
    kimi = rows["kimi"]
    assert (kimi.paired_cases, kimi.rate_a, kimi.rate_b, kimi.delta) == (10, 1.0, 0.0, 1.0)
    assert kimi.mcnemar_p == pytest.approx(2 * 0.5**10) and kimi.flip_rate == 1.0
    assert rows["glm"].flips == [] and rows["glm"].mcnemar_p == 1.0
    text = format_comparison(list(rows.values()), "a", "b")
    assert "flip kimi: kimi-i0-a1 resolved -> unresolved" in text


def test_the_shipped_gates_file_is_valid():
    names = [g.name for g in load_gates(ROOT / "config" / "gates.yaml")]
    assert names == ["baseline_ratio", "malformed_patches", "reproducibility", "cpu", "models_with_results"]


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, **(env or {})},
    )


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
    done = _run(*args, "--run-id", "gated", "--junitxml", str(junit))
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
    reported = _run(*args, "--run-id", "reported", "--no-gates")
    assert reported.returncode == 0 and "gate needs_two_models: FAILED" in reported.stdout
    cli = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "--config",
            str(cfg),
            "gates",
            str(tmp_path / "runs" / "gated"),
            "--compare-to",
            str(tmp_path / "runs" / "reported"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 1 and "gate reproducibility: PASSED" in cli.stdout
    compare = subprocess.run(
        [
            sys.executable,
            "-m",
            "harness",
            "compare",
            str(tmp_path / "runs" / "gated"),
            str(tmp_path / "runs" / "reported"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert compare.returncode == 0 and "gold" in compare.stdout and "flips" in compare.stdout
