"""The configuration schema: pure pydantic models of every config file (catalog, agent limits, grids,
instance slices, leaderboard columns, prices, gates). No I/O here: harness.config.loading reads the files.

Unknown keys are forbidden, so a typo is an error.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.errors import HarnessError

FIXTURES_SLICE = "fixtures"
DEFAULT_MINI_CONFIG = "swebench.yaml"
# Credential-like key names (max_tokens and top_k are sampling settings, not secrets).
SECRET_KEY_NAME = re.compile(
    r"(api[_-]?key|secret|password|passwd|authorization|bearer|(access|auth|api)[_-]?token|^token$|^key$)",
    re.I,
)


RETRY_KEYS = frozenset(
    {
        "max_retries",
        "num_retries",
        "retry_policy",
        "retry_strategy",
        "fallbacks",
        "context_window_fallback_dict",
    }
)
"""litellm/OpenAI SDK settings that retry or re-route a request behind the harness's back (and its quota)."""
MAX_TIMEOUT_S = 7 * 24 * 3600
"""Upper bound of every time limit (a week): larger values overflow timers (pytest-timeout, threading)."""
GRID_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
RESERVED_MARKS = frozenset(
    {"skip", "skipif", "xfail", "parametrize", "usefixtures", "filterwarnings", "timeout", "tryfirst",
     "trylast", "xdist_group", "flaky", "asyncio", "containers"}
)  # fmt: skip
"""Marker names pytest or its plugins act on: a grid named `skip` would skip all its cases."""


class Strict(BaseModel):
    """Unknown keys are errors; so are infinite and NaN numbers (an `.inf` budget or price is no limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _secret_like_keys(value: object, prefix: str = "") -> list[str]:
    """Keys at any depth whose name looks like a credential (api_key, extra_headers.Authorization, ...)."""
    if not isinstance(value, dict):
        return []
    found = []
    for key, inner in value.items():
        name = f"{prefix}{key}"
        if SECRET_KEY_NAME.search(str(key)):
            found.append(name)
        found += _secret_like_keys(inner, f"{name}.")
    return found


class ModelEntry(Strict):
    """One model of the catalog. `id` is the short id used in case ids, `-k` and file names."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*$")
    kind: Literal["gold", "empty", "noop", "scripted", "litellm", "predictions"]
    """gold / empty / noop (a patch that changes no code: calibration) need no model; predictions reads
    patches from `predictions_path` (--predictions); scripted and litellm call an LLM."""
    provider: str | None = None
    """chutes | openrouter | openai-compatible (any vLLM/SGLang/Ollama server: needs api_base)."""
    litellm_id: str | None = None
    api_base: str | None = None
    api_key_env: str | None = None
    """Environment variable holding the key (default: the provider's, e.g. CHUTES_API_KEY); None = no key."""
    description: str = ""
    context_window: int | None = Field(None, ge=1)
    price_in_per_mtok: float | None = Field(None, ge=0)
    """USD per million input tokens; null = unknown (cost stays unknown, never $0)."""
    price_out_per_mtok: float | None = Field(None, ge=0)
    price_date: str | None = None
    price_source: str | None = None
    model_kwargs: dict[str, object] = {}
    """Sampling settings passed to the API (temperature, top_p, max_tokens, seed). Never keys."""
    predictions_path: str | None = None
    """kind predictions: a SWE-bench predictions file (instance_id, model_patch, optional attempt)."""

    @field_validator("model_kwargs")
    @classmethod
    def _no_secrets(cls, value: dict[str, object]) -> dict[str, object]:
        bad = _secret_like_keys(value)
        if bad:
            raise ValueError(f"{bad[0]} must not be in model_kwargs: keys travel in the environment only")
        if retry := sorted(RETRY_KEYS & set(value)):
            raise ValueError(
                f"{retry[0]} must not be in model_kwargs: the harness owns retries (config/sweagent.yaml "
                "retries:) so that every request is counted against the budgets"
            )
        return value

    @model_validator(mode="after")
    def _litellm_needs_id(self) -> ModelEntry:
        if self.kind in ("litellm", "scripted") and not self.litellm_id:
            raise ValueError(f"model {self.id}: kind {self.kind} needs litellm_id")
        if self.kind == "predictions" and not self.predictions_path:
            raise ValueError(f"model {self.id}: kind predictions needs predictions_path")
        if self.provider == "openai-compatible" and not self.api_base:
            raise ValueError(f"model {self.id}: provider openai-compatible needs api_base")
        return self

    @property
    def price_known(self) -> bool:
        return self.price_in_per_mtok is not None and self.price_out_per_mtok is not None


class ProviderSettings(Strict):
    """Per-provider access and quota: where its OpenAI-compatible API is and which variable holds the key."""

    api_base: str | None = None
    api_key_env: str | None = None
    calls_per_day: int | None = Field(None, ge=0)
    """LLM requests per UTC day across all runs and workers (Chutes free tier: 2,000 or 5,000); null = no cap."""


class Catalog(Strict):
    providers: dict[str, ProviderSettings] = {}
    models: list[ModelEntry]

    @model_validator(mode="after")
    def _unique(self) -> Catalog:
        ids = [m.id for m in self.models]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate model id {dupes[0]}")
        return self

    def get(self, model_id: str) -> ModelEntry:
        for model in self.models:
            if model.id == model_id:
                return model
        raise HarnessError(f"unknown model id {model_id!r}; known: {', '.join(m.id for m in self.models)}")


class AgentLimits(Strict):
    backend: Literal["mini", "sweagent"] = "mini"
    """mini (mini-swe-agent, in-process) or sweagent (SWE-agent 1.1.0 CLI, optional extra); --agent overrides."""
    mini_config: str = DEFAULT_MINI_CONFIG
    """mini-swe-agent config whose prompts the agent uses: a file in the config dir (or an absolute path),
    else a name from minisweagent/config/benchmarks. Checked when a run starts."""
    step_limit: int = Field(40, ge=1)
    command_timeout_s: int = Field(60, ge=1, le=MAX_TIMEOUT_S)
    """Timeout of one shell command inside the container."""
    agent_timeout_s: int = Field(300, ge=1, le=MAX_TIMEOUT_S)
    """Wall-time limit of one attempt's agent loop."""
    case_timeout_s: int = Field(1800, ge=1, le=MAX_TIMEOUT_S)
    """pytest-timeout for a whole case (agent + queue + evaluation)."""


class EvaluationSettings(Strict):
    timeout_s: int = Field(1800, ge=1, le=MAX_TIMEOUT_S)
    workers: int = Field(4, ge=1)
    """Evaluation slots shared by every worker of a run (--eval-workers overrides)."""
    cpu_target_percent: float | None = Field(80, gt=0, le=100)
    """Slots beyond the first are admitted only while the machine's CPU is under this; null = no governor."""


class Budgets(Strict):
    usd_per_run: float | None = Field(None, ge=0)
    usd_per_case: float | None = Field(None, ge=0)
    expected_calls_per_case: float = Field(20, gt=0)
    """For the pre-flight estimate only."""
    expected_tokens_in_per_call: float = Field(8000, ge=0)
    expected_tokens_out_per_call: float = Field(400, ge=0)


class RetryPolicy(Strict):
    """One retry policy for LLM requests (the OpenAI SDK's and mini-swe-agent's own retries are off)."""

    max_attempts: int = Field(6, ge=1)
    base_delay_s: float = Field(1.0, ge=0)
    max_delay_s: float = Field(60.0, ge=0, le=MAX_TIMEOUT_S)
    max_total_s: float = Field(300.0, ge=0, le=MAX_TIMEOUT_S)
    """Give up when the next wait would pass this much time since the first attempt."""
    jitter: float = Field(0.25, ge=0, le=1)
    request_timeout_s: float = Field(120.0, gt=0, le=MAX_TIMEOUT_S)


class Grid(Strict):
    """What one marker selects: an instance slice x a model set x K attempts."""

    instances: str
    """`fixtures` for the bundled fixture instances, else an instances_*.yaml file in the config dir."""
    models: list[str] = Field(min_length=1)
    attempts: int = Field(1, ge=1)
    attempts_reason: str = ""
    agent_timeout_s: int | None = Field(None, ge=1, le=MAX_TIMEOUT_S)


class AgentConfig(Strict):
    agent: AgentLimits = AgentLimits()
    evaluation: EvaluationSettings = EvaluationSettings()
    retries: RetryPolicy = RetryPolicy()
    budgets: Budgets = Budgets()
    grids: dict[str, Grid]
    """Grid name = the pytest marker that selects it (`-m NAME`): an identifier pytest itself does not act on."""

    @field_validator("grids")
    @classmethod
    def _grid_names(cls, grids: dict[str, Grid]) -> dict[str, Grid]:
        for name in grids:
            if not GRID_NAME.match(name):
                raise ValueError(f"grid name {name!r} is not a marker name (letters, digits, '_'); rename it")
            if name in RESERVED_MARKS:
                raise ValueError(
                    f"grid name {name!r} is a marker pytest acts on (it would {name} the cases); rename it"
                )
        return grids


class SliceInstance(Strict):
    id: str
    split: Literal["dev", "test"]
    reason: str = Field(min_length=1)


class InstanceSlice(Strict):
    slice: str
    description: str
    rule: str
    instances: list[SliceInstance] = Field(min_length=1)


class LeaderboardColumns(Strict):
    default: str
    versions: dict[str, list[str]] = Field(min_length=1)

    @model_validator(mode="after")
    def _default_exists(self) -> LeaderboardColumns:
        if self.default not in self.versions:
            raise ValueError(
                f"default {self.default!r} is not one of the versions {', '.join(self.versions)}"
            )
        return self

    def columns(self, version: str) -> list[str]:
        """The columns of `version`: v0's plus every later version's up to it."""
        if version not in self.versions:
            raise HarnessError(
                f"leaderboard version {version!r} unknown; use one of {', '.join(self.versions)}"
            )
        names = list(self.versions)
        return [c for v in names[: names.index(version) + 1] for c in self.versions[v]]


class PriceOverride(Strict):
    price_in_per_mtok: float = Field(ge=0)
    price_out_per_mtok: float = Field(ge=0)
    price_date: str
    price_source: str


class PricesFile(Strict):
    prices: dict[str, PriceOverride] = {}


class GateSpec(Strict):
    """One exit gate of config/gates.yaml; which fields apply depends on `kind` (README, gates)."""

    name: str
    kind: Literal["baseline_ratio", "class_rate", "flip_rate", "cpu", "min_models"]
    grids: list[str] = ["all"]
    """The gate applies when the run's -m names one of these grids (`all` = every run)."""
    report_only: list[str] = []
    """Grids on which the gate is evaluated and reported but never fails the run (`all` = everywhere)."""
    baseline: str = "empty"
    exclude: list[str] = []
    factor: float = Field(1.5, gt=0)
    """baseline_ratio: lower bound of the best model's rate >= factor x upper bound of the baseline's."""
    alpha: float = Field(0.05, gt=0, lt=1)
    """baseline_ratio: the best model's lead must have a Holm-adjusted McNemar p <= alpha."""
    classes: list[str] = []
    max_rate: float = Field(0.1, ge=0, le=1)
    max_flip_rate: float = Field(0.25, ge=0, le=1)
    max_percent: float = Field(80, gt=0, le=100)
    """cpu: the CPU percent a sample may not exceed (psutil, whole machine)."""
    max_share_above: float = Field(0.1, ge=0, le=1)
    """cpu: the largest share of samples allowed above max_percent."""
    min_samples: int = Field(30, ge=1)
    """cpu: fewer samples (seconds, at the default interval) than this and the gate does not apply."""
    min_models: int = Field(1, ge=1)


class GatesFile(Strict):
    gates: list[GateSpec]


class QuarantineEntry(Strict):
    """An instance `python -m harness calibrate` found flaky or broken on the machine that scores."""

    instance: str
    verdict: Literal["flaky", "broken"]
    reason: str
    date: str
    run_id: str
    harness_version: str
    evaluator_version: str
    flipped_tests: list[str] = []


class QuarantineFile(Strict):
    instances: list[QuarantineEntry] = []
