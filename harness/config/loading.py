"""Loading the config directory: YAML files into the schema's models, with one-line errors.

Every problem (missing file, bad YAML, a field that fails validation) comes out as one `HarnessError`
line naming the file, the field and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from harness.config.catalog import apply_prices, with_extra_models
from harness.config.schema import (
    FIXTURES_SLICE,
    AgentConfig,
    Catalog,
    GatesFile,
    GateSpec,
    InstanceSlice,
    LeaderboardColumns,
    ModelEntry,
    PricesFile,
    QuarantineEntry,
    QuarantineFile,
)
from harness.errors import HarnessError, one_line

M = TypeVar("M", bound=BaseModel)


def load_yaml_model(path: Path, model: type[M]) -> M:
    """Read `path` as YAML into `model`; every problem becomes one HarnessError line."""
    if not path.is_file():
        raise HarnessError(f"{path}: file not found; restore it from git or pass --harness-config DIR")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise HarnessError(f"{path}: not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        problem = one_line(getattr(e, "problem", None) or e, None)
        raise HarnessError(f"{path}:{where} is not valid YAML ({problem}); fix the file") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        # A typo shows up twice (unknown key + missing field): name the unknown key, that is the fix.
        err = sorted(e.errors(), key=lambda x: x["type"] != "extra_forbidden")[0]
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = one_line(err["msg"], None)
        raise HarnessError(f"{path}: {loc}: {msg}; fix the file") from None


def project_root() -> Path:
    """The checkout the harness runs from (HARNESS_ROOT overrides)."""
    env = os.environ.get("HARNESS_ROOT")
    return Path(env).resolve() if env else Path(__file__).resolve().parents[2]


class HarnessConfig:
    """All config files of one config directory, validated together."""

    def __init__(
        self, config_dir: Path, root: Path | None = None, extra_models: list[ModelEntry] | None = None
    ):
        self.dir = config_dir
        self.root = root or project_root()
        catalog = load_yaml_model(config_dir / "model_catalog.yaml", Catalog)
        catalog = apply_prices(catalog, load_price_overrides(config_dir / "prices.yaml"))
        self.catalog = with_extra_models(catalog, extra_models or [])
        self.columns = load_yaml_model(config_dir / "leaderboard_columns.yaml", LeaderboardColumns)
        self.agent = load_yaml_model(config_dir / "sweagent.yaml", AgentConfig)
        self.slices: dict[str, InstanceSlice] = {}
        for name, grid in self.agent.grids.items():
            for model_id in grid.models:
                try:
                    self.catalog.get(model_id)
                except HarnessError as e:
                    raise HarnessError(f"{config_dir / 'sweagent.yaml'}: grids.{name}: {e}") from None
            if grid.instances != FIXTURES_SLICE and grid.instances not in self.slices:
                self.slices[grid.instances] = load_yaml_model(config_dir / grid.instances, InstanceSlice)

        self.gates = load_gates(config_dir / "gates.yaml")
        self.quarantine = load_quarantine(self.quarantine_path)

    @property
    def lock_path(self) -> Path:
        return self.dir / "dataset.lock"

    @property
    def quarantine_path(self) -> Path:
        return self.dir / "quarantine.yaml"

    def quarantined(self) -> dict[str, QuarantineEntry]:
        """Quarantined instances by id (config/quarantine.yaml, written by `python -m harness calibrate`)."""
        return {entry.instance: entry for entry in self.quarantine}


def load_gates(path: Path) -> list[GateSpec]:
    """config/gates.yaml: the exit gates of a run."""
    return load_yaml_model(path, GatesFile).gates


def load_price_overrides(path: Path) -> dict[str, dict]:
    """config/prices.yaml (written by `models prices --refresh`): model id -> price fields, validated."""
    if not path.is_file():
        return {}
    return {k: v.model_dump() for k, v in load_yaml_model(path, PricesFile).prices.items()}


def load_quarantine(path: Path) -> list[QuarantineEntry]:
    """config/quarantine.yaml; a missing file quarantines nothing."""
    return load_yaml_model(path, QuarantineFile).instances if path.is_file() else []
