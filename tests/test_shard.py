"""--shard K/N: a partition of the selected cases, attempts kept together, balanced by expected cost,
deterministic across processes, and stable when the grid grows."""

from __future__ import annotations

import random
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from harness.config import HarnessConfig
from harness.errors import HarnessError
from harness.results.records import CaseRecord
from harness.run.grid import build_grid, cases_selected_by
from harness.run.shard import (
    BALANCE_SLACK,
    DEFAULT_EVAL_S,
    CaseCosts,
    Shard,
    assign_units,
    load_case_costs,
    measured_costs,
    plan_shard,
    unit_costs,
    write_case_costs,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cfg() -> HarnessConfig:
    return HarnessConfig(ROOT / "config", root=ROOT)


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "", "-1/3", "1/3/5"])
def test_bad_shard_is_one_line(text):
    with pytest.raises(HarnessError) as exc:
        Shard.parse(text)
    assert "--shard" in str(exc.value) and "K/N" in str(exc.value) and "\n" not in str(exc.value)


def test_shard_parses_k_of_n():
    assert Shard.parse(" 2/3 ") == Shard(2, 3) and str(Shard.parse("1/1")) == "1/1"


@pytest.mark.parametrize(
    ("markexpr", "count"), [("demo", 3), ("i1", 1), ("i1", 4), ("i3", 7), ("not demo", 5)]
)
def test_shards_partition_the_selected_cases_with_attempts_together(cfg, markexpr, count):
    selected = cases_selected_by(markexpr, build_grid(cfg))
    plans = [
        plan_shard(cfg, selected, Shard(k, count), backend="mini", active_grids=frozenset())
        for k in range(1, count + 1)
    ]
    ids = [c.case_id for p in plans for c in p.cases]
    assert sorted(ids) == sorted(c.case_id for c in selected) and len(ids) == len(set(ids))
    home: dict[tuple[str, str], set[int]] = defaultdict(set)
    for k, plan in enumerate(plans):
        for case in plan.cases:
            home[(case.model_id, case.instance_id)].add(k)
    assert all(len(shards) == 1 for shards in home.values()), "a model x instance was split across shards"
    assert sum(p.cost_s for p in plans) == pytest.approx(plans[0].total_cost_s)
    again = plan_shard(cfg, selected, Shard(1, count), backend="mini", active_grids=frozenset())
    assert [c.case_id for c in again.cases] == [c.case_id for c in plans[0].cases]


def test_expected_cost_of_the_demo_units(cfg):
    demo = cases_selected_by("demo", build_grid(cfg))
    costs = unit_costs(cfg, demo, backend="mini", active_grids=frozenset({"demo"}), costs=CaseCosts())
    assert costs[("gold", "fixtures__calc-1")] == DEFAULT_EVAL_S  # no agent, one evaluation
    assert costs[("empty", "fixtures__calc-1")] == 0.0  # no agent, an empty patch is never evaluated
    assert costs[("scripted", "fixtures__calc-1")] == 120 + DEFAULT_EVAL_S  # the demo grid's agent limit
    sweagent = unit_costs(cfg, demo, backend="sweagent", active_grids=frozenset({"demo"}), costs=CaseCosts())
    assert sweagent[("empty", "fixtures__calc-1")] == 120  # SWE-agent runs the empty baseline
    measured = CaseCosts({"fixtures__calc-1": 3.0}, {"scripted": 5.0})
    costs = unit_costs(cfg, demo, backend="mini", active_grids=frozenset(), costs=measured)
    assert costs[("scripted", "fixtures__calc-1")] == 8.0 and costs[("gold", "fixtures__ledger-3")] == 3.0
    # an instance whose agents run 4x the median instance's: the model's agent seconds scaled by 4
    by_instance = CaseCosts(
        {"fixtures__calc-1": 3.0},
        {"scripted": 5.0},
        {"fixtures__calc-1": 40.0, "fixtures__textkit-2": 10.0, "fixtures__ledger-3": 5.0},
    )
    costs = unit_costs(cfg, demo, backend="mini", active_grids=frozenset(), costs=by_instance)
    assert costs[("scripted", "fixtures__calc-1")] == 5.0 * 4 + 3.0
    assert costs[("scripted", "fixtures__ledger-3")] == 5.0 * 0.5 + 3.0  # evaluation: the median measured
    assert costs[("gold", "fixtures__calc-1")] == 3.0  # no agent: the factor scales nothing


def _synthetic(instances: int, models: int, seed: int = 7) -> dict[tuple[str, str], float]:
    rng = random.Random(seed)
    evals = [rng.lognormvariate(3, 1) for _ in range(instances)]  # long-tailed evaluation seconds
    costs = {}
    for m in range(models):
        agent = 0.0 if m < 2 else 300.0  # two baselines, the rest LLM models
        for i in range(instances):
            costs[(f"m{m}", f"i{i}")] = 3 * (agent + (0.0 if m == 1 else evals[i]))
    return costs


@pytest.mark.parametrize("count", [3, 8, 20])
def test_loads_are_balanced_on_a_9000_case_grid(count):
    costs = _synthetic(300, 10)
    plan = assign_units(costs, count)
    loads = [sum(c for u, c in costs.items() if plan[u] == s) for s in range(count)]
    mean = sum(loads) / count
    assert max(loads) <= (1 + BALANCE_SLACK) * mean + max(costs.values())
    assert max(loads) / mean < 1.05, loads


def test_long_evaluations_are_spread_over_the_shards():
    costs = {("m", f"long-{i}"): 1000.0 for i in range(6)} | {("m", f"short-{i}"): 1.0 for i in range(300)}
    plan = assign_units(costs, 6)
    assert sorted(plan[("m", f"long-{i}")] for i in range(6)) == list(range(6))


def test_a_growing_grid_moves_few_existing_units():
    before = assign_units(_synthetic(300, 10), 8)
    grown = assign_units(_synthetic(315, 10), 8)  # 5 % more instances: 150 new units
    moved = sum(before[u] != grown[u] for u in before) / len(before)
    assert moved < 0.02, f"{moved:.1%} of existing units moved"
    more_models = assign_units(_synthetic(300, 11), 8)
    moved = sum(before[u] != more_models[u] for u in before) / len(before)
    assert moved < 0.02, f"{moved:.1%} of existing units moved"


def test_the_plan_is_the_same_in_another_process():
    code = (
        "from harness.run.shard import assign_units\n"
        "costs = {(f'm{m}', f'i{i}'): float((m * 7 + i * 13) % 29) for m in range(5) for i in range(40)}\n"
        "print(sorted(assign_units(costs, 4).items()))\n"
    )
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed},
            cwd=ROOT,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(outs) == 1 and outs.pop().startswith("[(('m0', 'i0'), ")


def test_case_costs_file_round_trip_and_errors(tmp_path):
    records = [
        CaseRecord(
            run_id="r",
            case_id=f"{m}-{i}-a{a}",
            model_id=m,
            provider=None,
            litellm_id=None,
            instance_id=i,
            repo="x/y",
            split="dev",
            attempt=a,
            agent_backend="mini-swe-agent",
            outcome="resolved",
            outcome_class="resolved",
            agent_wall_s=agent,
            eval_wall_s=ev,
            eval_cache=cache,
        )
        for (m, i, a, agent, ev, cache) in [
            ("kimi", "i1", 1, 40.0, 10.0, "miss"),
            ("kimi", "i1", 2, 60.0, 12.0, "off"),
            ("glm", "i1", 1, 30.0, 11.0, "miss"),
            ("gold", "i2", 1, 0.0, 4.0, "miss"),
            # cache hits: a copied verdict in milliseconds says nothing about what the evaluation costs
            ("gold", "i1", 1, 0.0, 0.01, "hit"),
            ("glm", "i2", 1, 30.0, 0.02, "hit"),  # the agents still count
            ("kimi", "i2", 1, 50.0, 0.01, "hit"),
        ]
    ]
    costs = measured_costs(records)
    assert costs.evaluation_s == {"i1": 11.0, "i2": 4.0} and costs.agent_s == {"glm": 30.0, "kimi": 50.0}
    assert costs.agent_instance_s == {"i1": 40.0, "i2": 40.0}  # every model's agents on the instance
    path = tmp_path / "case_costs.yaml"
    write_case_costs(path, costs, ["r"])
    assert load_case_costs(path) == costs and load_case_costs(tmp_path / "absent.yaml") == CaseCosts()
    path.write_text("evaluation_s: {i1: 3}\nagent_s: {kimi: 5}\n")  # a table written before agent_instance_s
    assert load_case_costs(path) == CaseCosts({"i1": 3.0}, {"kimi": 5.0}) and costs.instance_factor("i9") == 1
    path.write_text("agent_instance_s: {i1: -3}\n")
    with pytest.raises(HarnessError, match="negative"):
        load_case_costs(path)
    path.write_text("evaluation_s: [1, 2]\n")
    with pytest.raises(HarnessError, match="case-cost table"):
        load_case_costs(path)
    path.write_text("evaluation_s: {i1: -3}\n")
    with pytest.raises(HarnessError, match="negative"):
        load_case_costs(path)


def test_bad_shard_on_the_command_line_exits_4_with_one_error_line():
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "evals",
            "-m",
            "demo",
            "--shard",
            "0/3",
            "--collect-only",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert done.returncode == 4 and len(errors) == 1 and "--shard '0/3'" in errors[0], done.stderr
    assert "Traceback" not in done.stdout + done.stderr
