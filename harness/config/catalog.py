"""The model catalog as data: provider defaults, per-model provider settings, --model-spec entries, prices.

Pure functions over the schema (no network, no files): harness.infra.providers asks the providers,
harness.config.loading reads config/prices.yaml.
"""

from __future__ import annotations

import os

from pydantic import ValidationError

from harness.config.schema import Catalog, ModelEntry, ProviderSettings
from harness.errors import HarnessError

PROVIDER_DEFAULTS: dict[str, ProviderSettings] = {
    "chutes": ProviderSettings(api_base="https://llm.chutes.ai/v1", api_key_env="CHUTES_API_KEY"),
    "openrouter": ProviderSettings(api_base="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY"),
    "openai-compatible": ProviderSettings(),
}


def provider_settings(catalog: Catalog, model: ModelEntry) -> ProviderSettings:
    """The provider's defaults, overridden by the catalog's `providers:` and then by the model entry."""
    base = PROVIDER_DEFAULTS.get(model.provider or "", ProviderSettings())
    merged = base.model_dump() | {
        k: v
        for k, v in catalog.providers.get(model.provider or "", base).model_dump().items()
        if v is not None
    }
    if model.api_base:
        merged["api_base"] = model.api_base
    if model.api_key_env:
        merged["api_key_env"] = model.api_key_env
    return ProviderSettings(**merged)


def missing_key(catalog: Catalog, model: ModelEntry) -> str | None:
    """The name of the unset key variable this model needs, or None when it can be called."""
    if model.kind != "litellm":
        return None
    env = provider_settings(catalog, model).api_key_env
    return env if env and not os.environ.get(env) else None


def provider_model_id(model: ModelEntry) -> str:
    """The id the provider itself uses: the litellm id without its provider prefix."""
    litellm_id = model.litellm_id or ""
    return litellm_id.split("/", 1)[1] if "/" in litellm_id else litellm_id


def split_spec(spec: str) -> list[str]:
    """The comma-separated parts of a --model-spec; `\\,` is a comma inside a value, `\\\\` a backslash."""
    parts, current, chars = [], [], iter(spec)
    for char in chars:
        if char == "\\":
            current.append(next(chars, "\\"))
        elif char == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*parts, "".join(current)]


def parse_model_spec(spec: str) -> ModelEntry:
    """`id=NAME,litellm=openai/MODEL,api_base=URL[,api_key_env=VAR][,price_in=X,price_out=Y]` -> a model.

    A comma inside a value is written `\\,` (a backslash `\\\\`); each key may appear once.
    """
    names = {
        "id": "id",
        "litellm": "litellm_id",
        "api_base": "api_base",
        "api_key_env": "api_key_env",
        "price_in": "price_in_per_mtok",
        "price_out": "price_out_per_mtok",
        "context_window": "context_window",
    }
    fields: dict[str, object] = {
        "kind": "litellm",
        "provider": "openai-compatible",
        "price_source": "--model-spec",
        "description": "added with --model-spec",
    }
    seen: set[str] = set()
    for part in filter(None, (p.strip() for p in split_spec(spec))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in names:
            raise HarnessError(
                f"--model-spec {spec!r}: bad part {key.strip()!r}; use id=,litellm=,api_base= "
                "(optional api_key_env=, price_in=, price_out=, context_window=; a comma in a value is \\,)"
            )
        if key.strip() in seen:
            raise HarnessError(f"--model-spec {spec!r}: {key.strip()}= is given twice; give each key once")
        seen.add(key.strip())
        fields[names[key.strip()]] = value.strip()
    try:
        return ModelEntry.model_validate(fields)
    except ValidationError as e:
        err = e.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        raise HarnessError(f"--model-spec {spec!r}: {where}: {' '.join(str(err['msg']).split())}") from None


def with_extra_models(catalog: Catalog, extra: list[ModelEntry]) -> Catalog:
    known = {m.id for m in catalog.models}
    clash = [m.id for m in extra if m.id in known]
    if clash:
        raise HarnessError(f"--model-spec id {clash[0]!r} is already in the catalog; pick another id")
    return Catalog(providers=catalog.providers, models=[*catalog.models, *extra])


def apply_prices(catalog: Catalog, overrides: dict[str, dict]) -> Catalog:
    models = [
        ModelEntry.model_validate({**m.model_dump(), **overrides[m.id]}) if m.id in overrides else m
        for m in catalog.models
    ]
    return Catalog(providers=catalog.providers, models=models)
