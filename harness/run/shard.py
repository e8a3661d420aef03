"""`--shard K/N`: a deterministic split of the selected cases into N shards, each a normal run.

The unit of assignment is a model x instance: all its attempts land in one shard, so pass@k needs no
cross-shard join. Units are placed by consistent hashing with bounded loads (rendezvous hashing, as
in Mirrokni, Thorup and Zadimoghaddam 2018): each unit ranks the shards by sha256(unit, shard) and
takes the first whose expected load stays within (1 + BALANCE_SLACK) x the mean, else the least loaded.
Units are visited in hash order, so every machine computes the same plan from the same config, and a
grid that grows moves few existing units (docs/decisions.md has the measured figures).

Expected cost of a unit = attempts x (agent seconds + evaluation seconds): models that run no agent
(gold; empty under mini-swe-agent) cost no agent time, the empty patch is never evaluated. Seconds come
from config/case_costs.yaml when it exists (measured: `python -m harness costs RUN...`), else the
agent's time limit of the case's grid and DEFAULT_EVAL_S per evaluation. A model's agent seconds are
scaled by the instance's factor (its agents' median over the median instance's) when the table has one.
The same expected seconds order a run's cases, longest first (harness.run.dispatch).
"""

from __future__ import annotations

import hashlib
import json
import re
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import yaml

from harness.config import HarnessConfig
from harness.errors import HarnessError
from harness.results.records import CaseRecord, RunPaths, write_json_atomic
from harness.run.grid import Case

BALANCE_SLACK = 0.02
DEFAULT_EVAL_S = 11.4
"""Seconds per evaluation when no measured figure exists: sqlfluff-1625's official evaluation here
(DESIGN.md, facts). Only its ratio to the agent's time limit matters for the balance."""
COSTS_FILE = "case_costs.yaml"
COST_KEYS = ("evaluation_s", "agent_s", "agent_instance_s")
"""The table's sections, in CaseCosts' field order (agent_instance_s is optional: tables before it lack it)."""
NO_AGENT_KINDS = ("gold", "noop", "predictions")
"""Models whose patch needs no agent run (harness.agents.runner_for): only their evaluation costs."""
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")

Unit = tuple[str, str]
"""(model_id, instance_id): the attempts that stay together."""


@dataclass(frozen=True)
class Shard:
    index: int
    """1-based: --shard 1/3 is the first of three."""
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        match = _SHARD.match(text or "")
        if not match or not 1 <= int(match[1]) <= int(match[2]):
            raise HarnessError(
                f"--shard {text!r}: use K/N with 1 <= K <= N, e.g. --shard 2/3 (the second of three shards)"
            )
        return cls(int(match[1]), int(match[2]))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class CaseCosts:
    """Measured seconds per evaluation (by instance) and per agent attempt (by model, and by instance: how much
    longer or shorter than the median instance an instance's agents run)."""

    evaluation_s: dict[str, float] = field(default_factory=dict)
    agent_s: dict[str, float] = field(default_factory=dict)
    agent_instance_s: dict[str, float] = field(default_factory=dict)

    @property
    def default_eval_s(self) -> float:
        return statistics.median(self.evaluation_s.values()) if self.evaluation_s else DEFAULT_EVAL_S

    @cached_property
    def _median_instance_s(self) -> float:
        return statistics.median(self.agent_instance_s.values()) if self.agent_instance_s else 0.0

    def instance_factor(self, instance_id: str) -> float:
        """An instance's agent seconds over the median instance's (1 when either is unknown)."""
        seconds, median = self.agent_instance_s.get(instance_id), self._median_instance_s
        return seconds / median if seconds is not None and median > 0 else 1.0


def costs_path(cfg: HarnessConfig) -> Path:
    """The grid's measured cost table (it may not exist)."""
    return cfg.dir / COSTS_FILE


def load_case_costs(path: Path) -> CaseCosts:
    """config/case_costs.yaml, or no figures when it does not exist. A malformed file is one HarnessError line."""
    if not path.is_file():
        return CaseCosts()
    try:
        data = yaml.safe_load(path.read_text()) or {}
        costs = CaseCosts(
            *({str(k): float(v) for k, v in (data.get(key) or {}).items()} for key in COST_KEYS)
        )
    except (yaml.YAMLError, AttributeError, TypeError, ValueError) as e:
        raise HarnessError(
            f"{path}: not a case-cost table ({type(e).__name__}); rewrite it with `python -m harness costs RUN`"
        ) from None
    if any(v < 0 for key in COST_KEYS for v in getattr(costs, key).values()):
        raise HarnessError(f"{path}: negative seconds; rewrite it with `python -m harness costs RUN`")
    return costs


def case_cost_s(
    cfg: HarnessConfig, case: Case, *, backend: str, active_grids: frozenset[str], costs: CaseCosts
) -> float:
    """Expected seconds of one attempt: the model's agent seconds scaled by the instance's factor, plus the
    instance's evaluation."""
    kind = cfg.catalog.get(case.model_id).kind
    runs_agent = not (kind in NO_AGENT_KINDS or (kind == "empty" and backend == "mini"))
    agent = costs.agent_s.get(case.model_id, case.agent_timeout_s(active_grids)) if runs_agent else 0.0
    evaluation = 0.0 if kind == "empty" else costs.evaluation_s.get(case.instance_id, costs.default_eval_s)
    return agent * costs.instance_factor(case.instance_id) + evaluation


def unit_costs(
    cfg: HarnessConfig, cases: list[Case], *, backend: str, active_grids: frozenset[str], costs: CaseCosts
) -> dict[Unit, float]:
    """Expected seconds of each model x instance of `cases` (all its attempts)."""
    out: dict[Unit, float] = {}
    for case in cases:
        unit = (case.model_id, case.instance_id)
        seconds = case_cost_s(cfg, case, backend=backend, active_grids=active_grids, costs=costs)
        out[unit] = out.get(unit, 0.0) + seconds
    return out


def _score(unit: Unit, shard: int) -> bytes:
    return hashlib.sha256(f"{unit[0]}\0{unit[1]}\0{shard}".encode()).digest()


def assign_units(costs: dict[Unit, float], count: int) -> dict[Unit, int]:
    """Shard (0-based) of every unit: rendezvous order, bounded load, hash-ordered visits (deterministic)."""
    cap = (1 + BALANCE_SLACK) * sum(costs.values()) / count
    load = [0.0] * count
    plan: dict[Unit, int] = {}
    for unit in sorted(costs, key=lambda u: (hashlib.sha256(f"{u[0]}\0{u[1]}".encode()).digest(), u)):
        ranked = sorted(range(count), key=lambda s: _score(unit, s), reverse=True)
        chosen = next((s for s in ranked if load[s] + costs[unit] <= cap), None)
        if chosen is None:
            chosen = min(ranked, key=lambda s: load[s])
        load[chosen] += costs[unit]
        plan[unit] = chosen
    return plan


@dataclass(frozen=True)
class ShardPlan:
    shard: Shard
    cases: list[Case]
    """This shard's cases, in grid order."""
    selected: int
    cost_s: float
    total_cost_s: float

    @property
    def note(self) -> str:
        return (
            f"shard {self.shard}: {len(self.cases)} of {self.selected} selected cases, expected "
            f"{self.cost_s:,.0f} of {self.total_cost_s:,.0f} case-seconds"
        )

    def manifest_entry(self) -> dict[str, object]:
        return {
            "index": self.shard.index,
            "count": self.shard.count,
            "cases": len(self.cases),
            "selected_cases": self.selected,
            "expected_cost_s": round(self.cost_s, 1),
            "total_expected_cost_s": round(self.total_cost_s, 1),
        }


def plan_shard(
    cfg: HarnessConfig, selected: list[Case], shard: Shard, *, backend: str, active_grids: frozenset[str]
) -> ShardPlan:
    """The cases of `shard` among `selected` (what -m selected; -k applies later, within the shard)."""
    costs = unit_costs(
        cfg, selected, backend=backend, active_grids=active_grids, costs=load_case_costs(costs_path(cfg))
    )
    plan = assign_units(costs, shard.count)
    mine = [c for c in selected if plan[(c.model_id, c.instance_id)] == shard.index - 1]
    cost = sum(v for u, v in costs.items() if plan[u] == shard.index - 1)
    return ShardPlan(shard, mine, len(selected), cost, sum(costs.values()))


def measured_costs(records: list[CaseRecord]) -> CaseCosts:
    """Median evaluation seconds per instance (evaluations that ran, not cache hits), agent seconds per model and
    per instance (every model's agents on it), from CaseRecords of real runs."""
    evals: dict[str, list[float]] = {}
    agents: dict[str, list[float]] = {}
    by_instance: dict[str, list[float]] = {}
    for rec in records:
        if rec.eval_wall_s > 0 and rec.eval_cache != "hit":  # a hit copied an earlier verdict in milliseconds
            evals.setdefault(rec.instance_id, []).append(rec.eval_wall_s)
        if rec.agent_wall_s > 0 and rec.completed:
            agents.setdefault(rec.model_id, []).append(rec.agent_wall_s)
            by_instance.setdefault(rec.instance_id, []).append(rec.agent_wall_s)
    return CaseCosts(
        *(
            {k: round(statistics.median(v), 1) for k, v in sorted(d.items())}
            for d in (evals, agents, by_instance)
        )
    )


def write_case_costs(path: Path, costs: CaseCosts, sources: list[str]) -> None:
    header = (
        "# Measured seconds (medians) that --shard balances on and runs dispatch by (longest expected case\n"
        f"# first); written by `python -m harness costs` from {', '.join(sources)}. Commit it so every shard\n"
        "# of a grid computes the same plan.\n"
    )
    body = {key: getattr(costs, key) for key in COST_KEYS}
    path.write_text(header + yaml.safe_dump(body, sort_keys=True))


def record_shard(paths: RunPaths, plan: ShardPlan) -> None:
    """The run manifest names its shard (merge lists it among the parts)."""
    manifest = (
        json.loads(paths.manifest.read_text()) if paths.manifest.is_file() else {"run_id": paths.run_id}
    )
    manifest["shard"] = plan.manifest_entry()
    write_json_atomic(paths.manifest, manifest)
