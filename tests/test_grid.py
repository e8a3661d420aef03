"""harness.run.grid: the case grid of the real config, overrides, and the instance-id check."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from harness.config import HarnessConfig
from harness.errors import HarnessError
from harness.infra.dataset import load_lock, snapshot_instance_ids
from harness.run.grid import Case, build_grid, case_id, check_instances_exist

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
FIXTURES = ["fixtures__calc-1", "fixtures__textkit-2", "fixtures__ledger-3"]
I1_MODELS = [
    "empty",
    "qwen3-coder-480b",
    "qwen3-coder-30b",
    "kimi-k2-0905",
    "kimi-k2-75k",
    "glm-4.5",
    "glm-4.5-air",
]
I1_INSTANCES = [
    "sqlfluff__sqlfluff-1625",
    "sqlfluff__sqlfluff-1733",
    "marshmallow-code__marshmallow-1359",
    "marshmallow-code__marshmallow-1343",
    "pvlib__pvlib-python-1072",
    "pvlib__pvlib-python-1154",
    "pydicom__pydicom-1694",
    "pydicom__pydicom-1256",
]


@pytest.fixture(scope="module")
def cfg() -> HarnessConfig:
    return HarnessConfig(CONFIG, root=ROOT)


@pytest.fixture(scope="module")
def cases(cfg: HarnessConfig) -> list[Case]:
    return build_grid(cfg)


def in_grid(cases: list[Case], name: str) -> list[Case]:
    return [c for c in cases if name in c.grids]


def test_case_id_format() -> None:
    assert case_id("kimi-k2-0905", "sqlfluff__sqlfluff-1625", 1) == "kimi-k2-0905-sqlfluff__sqlfluff-1625-a1"
    case = Case("glm-4.5", "pydicom__pydicom-1256", 2, "dev", ("i1",), 45)
    assert case.case_id == "glm-4.5-pydicom__pydicom-1256-a2"


def test_case_ids_are_unique(cases: list[Case]) -> None:
    ids = [c.case_id for c in cases]
    assert len(ids) == len(set(ids))
    for c in cases:
        assert c.case_id == f"{c.model_id}-{c.instance_id}-a{c.attempt}"


def test_demo_grid(cases: list[Case]) -> None:
    demo = in_grid(cases, "demo")
    assert len(demo) == 9
    assert sorted(c.case_id for c in demo) == sorted(
        f"{m}-{i}-a1" for m in ("gold", "empty", "scripted") for i in FIXTURES
    )
    assert {c.grids for c in demo} == {("demo",)}
    assert {c.split for c in demo} == {"fixtures"}
    assert {c.agent_timeout_s() for c in demo} == {120}


def test_i1_grid(cases: list[Case]) -> None:
    i1 = in_grid(cases, "i1")
    assert len(i1) == 112
    assert Counter(c.model_id for c in i1) == dict.fromkeys(I1_MODELS, 16)
    assert Counter(c.instance_id for c in i1) == dict.fromkeys(I1_INSTANCES, 14)
    assert Counter(c.attempt for c in i1) == {1: 56, 2: 56}
    assert {c.split for c in i1} == {"dev"}
    assert "kimi-k2-75k-pvlib__pvlib-python-1154-a2" in {c.case_id for c in i1}


def test_whole_grid_counts(cases: list[Case]) -> None:
    # demo 9 + i0 3x3x1 + i3 19x7x2 + i2's 5 OpenRouter models x 8 x 2; i1 is inside i2 and i3,
    # i0 shares its empty/kimi a1 cases on 2 instances
    assert len(in_grid(cases, "i0")) == 9
    assert len(in_grid(cases, "i2")) == 192
    assert len(in_grid(cases, "i3")) == 266
    assert len(cases) == 360
    assert Counter(c.grids for c in cases) == {
        ("demo",): 9,
        ("i0",): 5,
        ("i0", "i1", "i2", "i3"): 4,
        ("i1", "i2", "i3"): 108,
        ("i2",): 80,
        ("i3",): 154,
    }


def test_case_in_several_grids_carries_every_marker(cases: list[Case]) -> None:
    by_id = {c.case_id: c for c in cases}
    shared = by_id["kimi-k2-0905-sqlfluff__sqlfluff-1625-a1"]
    assert shared.grids == ("i0", "i1", "i2", "i3")
    assert shared.agent_timeout_s() == 45  # no grid named: the smallest limit of its grids
    assert shared.agent_timeout_s(frozenset({"i0"})) == 300  # -m i0: i0's limit
    assert shared.agent_timeout_s(frozenset({"i3"})) == 90  # -m i3: i3's limit
    assert by_id["gold-sqlfluff__sqlfluff-1625-a1"].grids == ("i0",)
    assert by_id["gold-sqlfluff__sqlfluff-1625-a1"].agent_timeout_s() == 300  # i0 has no grid limit
    assert by_id["kimi-k2-0905-sqlfluff__sqlfluff-1625-a2"].grids == ("i1", "i2", "i3")
    assert "gold-sqlfluff__sqlfluff-1625-a2" not in by_id  # i0 is K=1


def test_models_override(cfg: HarnessConfig) -> None:
    cases = build_grid(cfg, models=["gold"])
    assert {c.model_id for c in cases} == {"gold"}
    assert len(in_grid(cases, "demo")) == 3
    assert len(in_grid(cases, "i1")) == 16  # 8 instances x K=2
    # demo + i3 (19 instances, K=2) + sqlfluff-2419 of i0 (K=1), the one i0 instance i3 lacks
    assert len(cases) == 3 + 19 * 2 + 1


def test_models_override_unknown(cfg: HarnessConfig) -> None:
    with pytest.raises(HarnessError) as info:
        build_grid(cfg, models=["gold", "gpt-99"])
    msg = str(info.value)
    assert "\n" not in msg
    assert "unknown model id 'gpt-99'" in msg
    assert "glm-4.5-air" in msg  # lists the known ids


def test_attempts_override(cfg: HarnessConfig) -> None:
    cases = build_grid(cfg, attempts=3)
    assert len(in_grid(cases, "demo")) == 27
    assert len(in_grid(cases, "i1")) == 8 * 7 * 3
    assert {c.attempt for c in cases} == {1, 2, 3}
    one = build_grid(cfg, models=["empty"], attempts=1)
    assert sorted(c.case_id for c in in_grid(one, "i1")) == sorted(f"empty-{i}-a1" for i in I1_INSTANCES)


@pytest.mark.parametrize("attempts", [0, -1])
def test_attempts_below_one(cfg: HarnessConfig, attempts: int) -> None:
    with pytest.raises(HarnessError) as info:
        build_grid(cfg, attempts=attempts)
    assert str(info.value) == f"--attempts {attempts}: K must be at least 1"


@pytest.fixture(scope="module")
def known_ids(cfg: HarnessConfig) -> dict[str, set[str]]:
    lock = load_lock(cfg.lock_path)
    return {split: set(snapshot_instance_ids(lock, split, ROOT)) for split in ("dev", "test")}


def test_real_instances_exist(cfg: HarnessConfig, known_ids: dict[str, set[str]]) -> None:
    assert len(known_ids["dev"]) == 23
    assert len(known_ids["test"]) == 300
    check_instances_exist(cfg, known_ids)  # does not raise


def test_unknown_instance_id(tmp_path: Path, known_ids: dict[str, set[str]]) -> None:
    dst = tmp_path / "config"
    shutil.copytree(CONFIG, dst)
    path = dst / "instances_i1.yaml"
    path.chmod(0o644)
    data = yaml.safe_load(path.read_text())
    data["instances"][3]["id"] = "marshmallow-code__marshmallow-99999"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    cfg = HarnessConfig(dst, root=ROOT)
    with pytest.raises(HarnessError) as info:
        check_instances_exist(cfg, known_ids)
    msg = str(info.value)
    assert "\n" not in msg
    assert str(path) in msg
    assert "unknown instance id 'marshmallow-code__marshmallow-99999' in split dev" in msg


def test_instance_in_wrong_split(tmp_path: Path, known_ids: dict[str, set[str]]) -> None:
    dst = tmp_path / "config"
    shutil.copytree(CONFIG, dst)
    path = dst / "instances_i0.yaml"
    path.chmod(0o644)
    data = yaml.safe_load(path.read_text())
    data["instances"][0]["split"] = "test"  # sqlfluff-1625 is a dev instance
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(HarnessError, match=r"unknown instance id 'sqlfluff__sqlfluff-1625' in split test"):
        check_instances_exist(HarnessConfig(dst, root=ROOT), known_ids)


def _case(model: str, *grids: str) -> Case:
    return Case(model, "fixtures__calc-1", 1, "fixtures", grids, tuple(60 for _ in grids))


def test_mark_expressions_select_grids_the_way_pytest_does() -> None:
    from harness.run.grid import cases_selected_by, grids_selected_by

    cases = [
        _case("gold", "demo"),
        _case("a", "i1", "i2"),
        _case("d", "i2"),
        _case("b", "i3"),
        _case("c", "i1", "i3"),
    ]
    assert grids_selected_by("i3", cases) == {"i3"}  # i1 is not run whole: a's case is not selected
    assert grids_selected_by("i1", cases) == {"i1"}
    assert grids_selected_by("not demo", cases) == {"i1", "i2", "i3"}  # demo is not active
    assert grids_selected_by("i1 and i3", cases) == {"i1", "i3"}  # no grid whole: the grids of case c
    assert grids_selected_by("i10", cases) == frozenset()
    assert grids_selected_by("", cases) == frozenset()  # no -m: no grid named, limits and gates as before
    assert [c.model_id for c in cases_selected_by("not demo and not i2", cases)] == ["b", "c"]
    assert grids_selected_by("i2", cases) == {"i2"}
    assert cases_selected_by("", cases) == cases


def test_a_broken_mark_expression_is_one_line() -> None:
    from harness.run.grid import cases_selected_by

    with pytest.raises(HarnessError, match=r"^-m 'i1 and \(': not a mark expression") as info:
        cases_selected_by("i1 and (", [_case("a", "i1")])
    assert "\n" not in str(info.value)


def test_the_real_config_under_not_demo_runs_every_grid_but_demo() -> None:
    from harness.run.grid import grids_selected_by

    cfg = HarnessConfig(CONFIG, root=ROOT)
    cases = build_grid(cfg)
    assert grids_selected_by("not demo", cases) == set(cfg.agent.grids) - {"demo"}
    assert grids_selected_by("i1", cases) == {"i1"}  # i1's cases are also i2's: -m i1 runs i1 only
    same_models = build_grid(cfg, models=["gold", "empty"])  # i1 and i2 become the same cases
    assert grids_selected_by("i1", same_models) == {"i1"}  # the named grid, not i2 (its gates stay off)
