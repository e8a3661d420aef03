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

    @property
    def needs_fixture_images(self) -> bool:
        """A bundled fixture instance whose agent or evaluation runs in its image (the `empty` baseline runs
        nothing); the harness builds those images itself (RunContext.ensure_fixture_images)."""
        return self.split == FIXTURES_SLICE and self.model_id != "empty"

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
    cfg: HarnessConfig,
    *,
    models: list[str] | None = None,
    attempts: int | None = None,
    add_models: list[str] | None = None,
) -> list[Case]:
    """All cases of all grids, each case once, carrying the names of the grids (markers) it belongs to.

    `models` replaces every grid's model set (--models); `add_models` joins every grid (--predictions).
    """
    if attempts is not None and attempts < 1:
        raise HarnessError(f"--attempts {attempts}: K must be at least 1")
    for model_id in models or []:
        cfg.catalog.get(model_id)
    merged: dict[str, dict] = {}
    for name, grid in cfg.agent.grids.items():
        timeout = grid.agent_timeout_s or cfg.agent.agent.agent_timeout_s
        for model_id in [*(models or grid.models), *(add_models or [])]:
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


def cases_selected_by(markexpr: str, cases: list[Case]) -> list[Case]:
    """The cases a `-m` expression selects, evaluated the way pytest evaluates it on the cases' grid marks.

    No expression selects every case. A bad expression is one HarnessError line.
    """
    if not (markexpr or "").strip():
        return list(cases)
    from _pytest.mark.expression import Expression

    try:
        expression = Expression.compile(markexpr)
    except SyntaxError as e:
        raise HarnessError(
            f"-m {markexpr!r}: not a mark expression ({e.msg}); e.g. -m i1 or -m 'i1 and not demo'"
        ) from None
    return [c for c in cases if expression.evaluate(_marks_matcher(c.grids))]


def _marks_matcher(marks: tuple[str, ...]):
    """pytest's matcher protocol (a name, keyword arguments for marks with arguments: grids have none)."""
    return lambda name, /, **kwargs: not kwargs and name in marks


def grids_selected_by(markexpr: str, cases: list[Case]) -> frozenset[str]:
    """The grids being run: those whose every case `-m` selects (`-m "not demo"` -> every grid but demo).
    Of those, the ones the expression names win (`-m i1` -> i1, though i1's cases are also i2's, whole
    when --models gives both grids the same models). When no grid is selected whole (`-m "i1 and i3"`),
    the grids of the selected cases.

    No expression names no grid (empty set): limits fall back to each case's smallest, and only gates for
    "all" grids apply, as for a plain `pytest evals`.
    """
    if not (markexpr or "").strip():
        return frozenset()
    import re

    selected = {c.case_id for c in cases_selected_by(markexpr, cases)}
    by_grid: dict[str, set[str]] = {}
    for c in cases:
        for g in c.grids:
            by_grid.setdefault(g, set()).add(c.case_id)
    whole = frozenset(g for g, ids in by_grid.items() if ids <= selected)
    named = whole & set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", markexpr))
    return named or whole or frozenset(g for g, ids in by_grid.items() if ids & selected)


def keyword_selected(keywordexpr: str, cases: list[Case]) -> list[Case]:
    """The cases `-k` keeps, matched as pytest matches an item of evals/test_swebench.py: a case-insensitive
    substring of its names (folder, module, `test_swebench[<case id>]`) or marks (grids, timeout).
    """
    from _pytest.mark.expression import Expression

    try:
        expression = Expression.compile(keywordexpr) if keywordexpr.strip() else None
    except SyntaxError:
        expression = None  # pytest reports the bad expression itself
    if expression is None:
        return list(cases)

    def kept(c: Case) -> bool:
        names = [
            n.lower()
            for n in ("evals", "test_swebench.py", f"test_swebench[{c.case_id}]", "timeout", *c.grids)
        ]
        return expression.evaluate(lambda sub, /, **kw: any(sub.lower() in n for n in names))

    return [c for c in cases if kept(c)]
