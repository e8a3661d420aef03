"""harness.config: the real config loads; every broken copy fails with one HarnessError line naming the file."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from harness.config import Catalog, HarnessConfig, InstanceSlice, ModelEntry, load_yaml_model
from harness.errors import HarnessError

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"


@pytest.fixture
def cfg_dir(tmp_path: Path) -> Path:
    """A writable copy of the real config directory."""
    dst = tmp_path / "config"
    shutil.copytree(CONFIG, dst)
    for path in dst.iterdir():
        path.chmod(0o644)
    return dst


def edit(path: Path, change: Callable[[dict], None]) -> Path:
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load_error(cfg_dir: Path) -> str:
    with pytest.raises(HarnessError) as info:
        HarnessConfig(cfg_dir, root=ROOT)
    return str(info.value)


def assert_one_line(message: str, path: Path, *needles: str) -> None:
    assert "\n" not in message, message
    assert str(path) in message
    for needle in needles:
        assert needle in message, (needle, message)


# --- the real config -------------------------------------------------------------------------------


def test_real_config_loads() -> None:
    cfg = HarnessConfig(CONFIG, root=ROOT)
    ids = [m.id for m in cfg.catalog.models]
    assert ids == [
        "gold",
        "empty",
        "scripted",
        "qwen3-coder-480b",
        "qwen3-coder-30b",
        "kimi-k2-0905",
        "kimi-k2-75k",
        "glm-4.5",
        "glm-4.5-air",
        "qwen3-coder-or",
        "deepseek-v3.1",
        "gpt-oss-120b",
        "glm-4.5-air-or",
        "devstral-small",
    ]
    openrouter = [m for m in cfg.catalog.models if m.provider == "openrouter"]
    assert len(openrouter) >= 4 and all(m.litellm_id.startswith("openrouter/") for m in openrouter)
    assert all(m.price_in_per_mtok is None or m.price_date for m in cfg.catalog.models)
    assert cfg.catalog.providers["chutes"].calls_per_day == 2000
    assert len(cfg.agent.grids["i2"].models) >= 9  # plan i2: 8-10 models with results, plus the baseline
    assert cfg.agent.budgets.usd_per_run == 5.0
    assert cfg.catalog.get("kimi-k2-0905").litellm_id == "chutes/moonshotai/Kimi-K2-Instruct-0905"
    assert sorted(cfg.agent.grids) == ["demo", "i0", "i1", "i2", "i3"]
    assert cfg.agent.grids["i1"].attempts == 2
    assert cfg.agent.grids["i1"].agent_timeout_s == 45
    assert cfg.agent.agent.step_limit == 40
    assert cfg.agent.evaluation.workers == 4
    assert sorted(cfg.slices) == ["instances_i0.yaml", "instances_i1.yaml", "instances_i3.yaml"]
    assert len(cfg.slices["instances_i1.yaml"].instances) == 8
    assert cfg.lock_path == CONFIG / "dataset.lock"


def test_real_config_has_no_secret_kwargs() -> None:
    cfg = HarnessConfig(CONFIG, root=ROOT)
    for model in cfg.catalog.models:
        assert not {k.lower() for k in model.model_kwargs} & {"api_key", "key", "token", "authorization"}


def test_catalog_get_unknown_is_one_line() -> None:
    cfg = HarnessConfig(CONFIG, root=ROOT)
    with pytest.raises(HarnessError) as info:
        cfg.catalog.get("gpt-99")
    assert "\n" not in str(info.value)
    assert "unknown model id 'gpt-99'" in str(info.value)
    assert "kimi-k2-0905" in str(info.value)


# --- typos (extra keys forbidden) ------------------------------------------------------------------


def test_typo_in_model_catalog(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "model_catalog.yaml", lambda d: d["models"][0].update(kidn="gold"))
    assert_one_line(load_error(cfg_dir), path, "models.0.kidn", "Extra inputs are not permitted")


def test_typo_in_sweagent_yaml(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "sweagent.yaml", lambda d: d["agent"].update(step_limt=10))
    assert_one_line(load_error(cfg_dir), path, "agent.step_limt", "Extra inputs are not permitted")


def test_typo_in_a_grid(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "sweagent.yaml", lambda d: d["grids"]["i0"].update(attempt=3))
    assert_one_line(load_error(cfg_dir), path, "grids.i0.attempt", "Extra inputs are not permitted")


def test_typo_in_instances_file(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "instances_i1.yaml", lambda d: d["instances"][2].update(splt="dev"))
    assert_one_line(load_error(cfg_dir), path, "instances.2.splt", "Extra inputs are not permitted")


def test_instances_file_bad_split(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "instances_i0.yaml", lambda d: d["instances"][0].update(split="train"))
    assert_one_line(load_error(cfg_dir), path, "instances.0.split")


# --- unreadable files ------------------------------------------------------------------------------


def test_bad_yaml_names_file_and_line(cfg_dir: Path) -> None:
    path = cfg_dir / "model_catalog.yaml"
    path.write_text("models:\n  - id: gold\n    kind: [gold\n")
    assert_one_line(load_error(cfg_dir), path, "is not valid YAML", "line ")


def test_bad_yaml_in_instances_file(cfg_dir: Path) -> None:
    path = cfg_dir / "instances_i3.yaml"
    path.write_text("slice: i3\ninstances:\n\t- id: x\n")
    assert_one_line(load_error(cfg_dir), path, "line 3 is not valid YAML")


def test_empty_file_is_a_config_error(cfg_dir: Path) -> None:
    path = cfg_dir / "sweagent.yaml"
    path.write_text("")
    assert_one_line(load_error(cfg_dir), path, "(top level)", "valid dictionary")


@pytest.mark.parametrize("name", ["model_catalog.yaml", "sweagent.yaml", "instances_i1.yaml"])
def test_missing_file(cfg_dir: Path, name: str) -> None:
    (cfg_dir / name).unlink()
    assert_one_line(load_error(cfg_dir), cfg_dir / name, "file not found")


def test_missing_config_dir(tmp_path: Path) -> None:
    assert_one_line(load_error(tmp_path / "nope"), tmp_path / "nope" / "model_catalog.yaml", "file not found")


def test_control_character_is_one_line(cfg_dir: Path) -> None:
    path = cfg_dir / "model_catalog.yaml"
    path.write_bytes(b"models:\x01 []\n")
    assert_one_line(load_error(cfg_dir), path, "is not valid YAML")


def test_non_utf8_file_is_a_harness_error(cfg_dir: Path) -> None:
    path = cfg_dir / "sweagent.yaml"
    path.write_bytes(path.read_bytes() + b"# caf\xe9\n")
    assert_one_line(load_error(cfg_dir), path, "sweagent.yaml")


# --- semantic checks -------------------------------------------------------------------------------


def test_duplicate_model_id(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "model_catalog.yaml", lambda d: d["models"].append(dict(d["models"][4])))
    assert_one_line(load_error(cfg_dir), path, "duplicate model id qwen3-coder-30b")


def test_grid_names_unknown_model(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "sweagent.yaml", lambda d: d["grids"]["i1"]["models"].append("gpt-99"))
    assert_one_line(load_error(cfg_dir), path, "grids.i1", "unknown model id 'gpt-99'")


@pytest.mark.parametrize("key", ["api_key", "API_KEY", "token", "Authorization"])
def test_model_kwargs_with_secret(cfg_dir: Path, key: str) -> None:
    path = edit(
        cfg_dir / "model_catalog.yaml",
        lambda d: d["models"][2]["model_kwargs"].update({key: "sk-not-a-real-key"}),
    )
    msg = load_error(cfg_dir)
    assert_one_line(msg, path, "models.2.model_kwargs", f"{key} must not be in model_kwargs")
    assert "sk-not-a-real-key" not in msg


def test_litellm_model_needs_litellm_id(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "model_catalog.yaml", lambda d: d["models"][3].pop("litellm_id"))
    assert_one_line(load_error(cfg_dir), path, "model qwen3-coder-480b: kind litellm needs litellm_id")


def test_bad_model_id_pattern(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "model_catalog.yaml", lambda d: d["models"][0].update(id="Gold Model"))
    assert_one_line(load_error(cfg_dir), path, "models.0.id", "should match pattern")


def test_attempts_zero(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "sweagent.yaml", lambda d: d["grids"]["i1"].update(attempts=0))
    assert_one_line(load_error(cfg_dir), path, "grids.i1.attempts", "greater than or equal to 1")


def test_grid_without_models(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "sweagent.yaml", lambda d: d["grids"]["i0"].update(models=[]))
    assert_one_line(load_error(cfg_dir), path, "grids.i0.models")


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("agent", "agent_timeout_s", 0),
        ("agent", "command_timeout_s", -1),
        ("agent", "case_timeout_s", -1800),
        ("agent", "step_limit", 0),
        ("evaluation", "timeout_s", 0),
        ("evaluation", "workers", -2),
    ],
)
def test_non_positive_limits(cfg_dir: Path, section: str, key: str, value: int) -> None:
    path = edit(cfg_dir / "sweagent.yaml", lambda d: d[section].update({key: value}))
    assert_one_line(load_error(cfg_dir), path, f"{section}.{key}", "greater than or equal to 1")


def test_grid_timeout_zero(cfg_dir: Path) -> None:
    path = edit(cfg_dir / "sweagent.yaml", lambda d: d["grids"]["demo"].update(agent_timeout_s=0))
    assert_one_line(load_error(cfg_dir), path, "grids.demo.agent_timeout_s", "greater than or equal to 1")


def test_load_yaml_model_directly(cfg_dir: Path) -> None:
    sl = load_yaml_model(cfg_dir / "instances_i0.yaml", InstanceSlice)
    assert sl.slice == "i0"
    assert [i.id for i in sl.instances] == [
        "sqlfluff__sqlfluff-1625",
        "sqlfluff__sqlfluff-1733",
        "sqlfluff__sqlfluff-2419",
    ]
    with pytest.raises(HarnessError, match="slice: Extra inputs are not permitted"):
        load_yaml_model(cfg_dir / "instances_i0.yaml", Catalog)


def test_sampling_settings_are_not_mistaken_for_secrets(cfg_dir: Path, tmp_path: Path) -> None:
    """Settings whose names look key-ish (max_tokens, top_k) load from the catalog and reach the request."""
    from harness.agents import AgentTask
    from harness.agents.mini import MiniRunner, mini_benchmark_config, mini_config_path

    settings = {"max_tokens": 100, "top_k": 5, "temperature": 0.0, "seed": 1}
    edit(cfg_dir / "model_catalog.yaml", lambda d: d["models"][2].update(model_kwargs=settings))
    entry = HarnessConfig(cfg_dir, root=ROOT).catalog.get("scripted")
    task = AgentTask(
        run_id="r", case_id="c", row={}, image="i", model=entry, step_limit=1, command_timeout_s=1,
        agent_timeout_s=60, artifacts_dir=tmp_path, container_executable="podman", api_base="http://h/v1",
    )  # fmt: skip
    bench = mini_benchmark_config(mini_config_path("swebench.yaml", ROOT / "config"))
    sent = MiniRunner._model_config(task, bench)["model_kwargs"]
    assert {k: sent.get(k) for k in settings} == settings  # every setting goes to litellm as written
    assert not {k for k in sent if "key" in k.lower() or "auth" in k.lower()}
    for bad in (
        {"api_key": "x"},
        {"extra_headers": {"Authorization": "x"}},
        {"openai_api_key": "x"},
        {"access_token": "x"},
    ):
        with pytest.raises(ValueError, match="must not be in model_kwargs"):
            ModelEntry(id="m", kind="litellm", litellm_id="openai/m", model_kwargs=bad)


def test_unknown_mini_config_is_one_line_naming_the_known_ones(tmp_path):
    from harness.agents.mini import mini_config_path

    with pytest.raises(HarnessError) as info:
        mini_config_path("swebench_typo.yaml", tmp_path)
    message = str(info.value)
    assert "agent.mini_config 'swebench_typo.yaml'" in message and "swebench.yaml" in message
    assert "\n" not in message
    assert mini_config_path("swebench.yaml", tmp_path).name == "swebench.yaml"
