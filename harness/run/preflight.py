"""Before a run: which models can be called (keys, provider listings) and what the run may cost.

Runs in the controller only, after collection config and before any case. Writes
runs/<run_id>/availability.json, which every worker reads to skip unavailable models.
"""

from __future__ import annotations

from dataclasses import asdict

from harness.config import HarnessConfig, ModelEntry
from harness.config.catalog import missing_key
from harness.infra.budget import estimate_cost
from harness.infra.providers import check_models
from harness.results.records import RunPaths, write_json_atomic
from harness.run.grid import Case


def selected_models(cfg: HarnessConfig, cases: list[Case]) -> list[ModelEntry]:
    ids = {c.model_id for c in cases}
    return [m for m in cfg.catalog.models if m.id in ids]


def credential_lines(cfg: HarnessConfig, models: list[ModelEntry]) -> list[str]:
    missing = {}
    for model in models:
        if env := missing_key(cfg.catalog, model):
            missing.setdefault(env, []).append(model.id)
    return [
        f"no credentials: {env} is not set; cases of {', '.join(ids)} will be skipped (secrets/credentials.txt, README)"
        for env, ids in sorted(missing.items())
    ]


def estimate_lines(cfg: HarnessConfig, cases: list[Case], models: list[ModelEntry]) -> list[str]:
    """cases x expected calls x price, per LLM model; unknown prices stay unknown."""
    b = cfg.agent.budgets
    lines = []
    for model in models:
        if model.kind != "litellm":
            continue
        n = sum(1 for c in cases if c.model_id == model.id)
        usd = estimate_cost(
            n,
            b.expected_calls_per_case,
            b.expected_tokens_in_per_call,
            b.expected_tokens_out_per_call,
            model.price_in_per_mtok,
            model.price_out_per_mtok,
        )
        cost = f"~${usd:.2f}" if usd is not None else "unknown (no catalog price)"
        lines.append(f"estimate {model.id}: {n} cases x {b.expected_calls_per_case:g} calls, cost {cost}")
    if b.usd_per_run is not None:
        lines.append(
            f"budget: USD {b.usd_per_run:g} per run"
            + (f", {b.usd_per_case:g} per case" if b.usd_per_case else "")
        )
    return lines


def check_availability(cfg: HarnessConfig, models: list[ModelEntry], paths: RunPaths) -> list[str]:
    """Ask providers which models exist; record it for the workers; lines for the report."""
    llm = [m for m in models if m.kind == "litellm" and not missing_key(cfg.catalog, m)]
    if not llm:
        return []
    found = check_models(cfg.catalog, llm, timeout=10.0)
    write_json_atomic(paths.root / "availability.json", {a.model_id: asdict(a) for a in found})
    return [
        f"model {a.model_id}: {a.status}" + (f" ({a.detail})" if a.detail else "")
        for a in found
        if a.status != "available"
    ]
