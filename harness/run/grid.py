"""The case grid: model x instance x attempt for every grid of config/sweagent.yaml, with its markers.

Collection-time code: reads YAML and instance ids only; never imports litellm or touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.config import FIXTURES_SLICE, HarnessConfig
from harness.demo.fixtures import FIXTURE_IDS
from harness.errors import HarnessError


@dataclass(frozen=True)
class Case:
    model_id: str
    instance_id: str
    attempt: int
    split: str
    """`fixtures`, `dev` or `test`: where the instance row comes from."""
    grids: tuple[str, ...]
    timeouts: tuple[int, ...]
    """Agent wall-time limit of each grid in `grids`, in the same order."""

    @property
    def case_id(self) -> str:
        return case_id(self.model_id, self.instance_id, self.attempt)

    def agent_timeout_s(self, active_grids: frozenset[str] = frozenset()) -> int:
        """The limit of the grid being run (`-m i3` -> i3's), else the smallest of the case's grids."""
        chosen = [t for g, t in zip(self.grids, self.timeouts, strict=True) if g in active_grids]
        return min(chosen or self.timeouts)


def case_id(model_id: str, instance_id: str, attempt: int) -> str:
    return f"{model_id}-{instance_id}-a{attempt}"


def _slice_instances(cfg: HarnessConfig, slice_name: str) -> list[tuple[str, str]]:
    if slice_name == FIXTURES_SLICE:
        return [(i, FIXTURES_SLICE) for i in FIXTURE_IDS]
    return [(inst.id, inst.split) for inst in cfg.slices[slice_name].instances]


def check_instances_exist(cfg: HarnessConfig, known: dict[str, set[str]]) -> None:
    """Every instance of every slice must be in its split of the locked snapshot."""
    for name, sl in cfg.slices.items():
        for inst in sl.instances:
            if inst.id not in known.get(inst.split, set()):
                raise HarnessError(
                    f"{cfg.dir / name}: unknown instance id {inst.id!r} in split {inst.split}; "
                    "check the id against data/swebench_lite or rerun tools/select_instances.py"
                )


def build_grid(
    cfg: HarnessConfig, *, models: list[str] | None = None, attempts: int | None = None
) -> list[Case]:
    """All cases of all grids, each case once, carrying the names of the grids (markers) it belongs to."""
    if attempts is not None and attempts < 1:
        raise HarnessError(f"--attempts {attempts}: K must be at least 1")
    for model_id in models or []:
        cfg.catalog.get(model_id)
    merged: dict[str, dict] = {}
    for name, grid in cfg.agent.grids.items():
        timeout = grid.agent_timeout_s or cfg.agent.agent.agent_timeout_s
        for model_id in models or grid.models:
            for instance_id, split in _slice_instances(cfg, grid.instances):
                for k in range(1, (attempts or grid.attempts) + 1):
                    cid = case_id(model_id, instance_id, k)
                    entry = merged.setdefault(
                        cid,
                        {
                            "model_id": model_id,
                            "instance_id": instance_id,
                            "attempt": k,
                            "split": split,
                            "grids": [],
                            "timeouts": [],
                        },
                    )
                    entry["grids"].append(name)
                    entry["timeouts"].append(timeout)
    return [
        Case(**{**e, "grids": tuple(e["grids"]), "timeouts": tuple(e["timeouts"])}) for e in merged.values()
    ]


def grids_named_in(markexpr: str, grid_names: list[str]) -> frozenset[str]:
    """The grids a `-m` expression names (`i3`, `i1 and not demo` -> {i1, demo}); used to pick limits."""
    import re

    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", markexpr or ""))
    return frozenset(g for g in grid_names if g in words)
