"""Configuration: `schema` (pure pydantic models of every file), `loading` (files into models, one-line
errors), `catalog` (provider defaults, --model-spec, prices as pure functions over the catalog).

The names most callers need are re-exported here.
"""

from harness.config.loading import HarnessConfig, load_yaml_model, project_root
from harness.config.schema import (
    FIXTURES_SLICE,
    AgentConfig,
    AgentLimits,
    Budgets,
    Catalog,
    GateSpec,
    Grid,
    InstanceSlice,
    LeaderboardColumns,
    ModelEntry,
    ProviderSettings,
    RetryPolicy,
    Strict,
)

__all__ = [
    "FIXTURES_SLICE",
    "AgentConfig",
    "AgentLimits",
    "Budgets",
    "Catalog",
    "GateSpec",
    "Grid",
    "HarnessConfig",
    "InstanceSlice",
    "LeaderboardColumns",
    "ModelEntry",
    "ProviderSettings",
    "RetryPolicy",
    "Strict",
    "load_yaml_model",
    "project_root",
]
