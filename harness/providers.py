"""Providers: where each catalog model is served, which variable holds its key, availability and prices.

Keys are read from the environment only (secrets/credentials.txt is loaded into it); nothing here
writes a key anywhere. `--model-spec` adds a self-hosted OpenAI-compatible model for one run.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from harness import HarnessError
from harness.config import Catalog, ModelEntry, ProviderSettings

PROVIDER_DEFAULTS: dict[str, ProviderSettings] = {
    "chutes": ProviderSettings(api_base="https://llm.chutes.ai/v1", api_key_env="CHUTES_API_KEY"),
    "openrouter": ProviderSettings(api_base="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY"),
    "openai-compatible": ProviderSettings(),
}
OPENROUTER_MODELS_URL = "https://openrouter.ai/api/v1/models"


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


def parse_model_spec(spec: str) -> ModelEntry:
    """`id=NAME,litellm=openai/MODEL,api_base=URL[,api_key_env=VAR][,price_in=X,price_out=Y]` -> a model."""
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
    for part in filter(None, (p.strip() for p in spec.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in names:
            raise HarnessError(
                f"--model-spec {spec!r}: bad part {key.strip()!r}; use id=,litellm=,api_base= "
                "(optional api_key_env=, price_in=, price_out=, context_window=)"
            )
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


@dataclass(frozen=True)
class Availability:
    model_id: str
    status: str
    """available | unavailable | no-credentials | unreachable | offline-baseline"""
    detail: str = ""


def _get_json(url: str, key: str | None, timeout: float) -> dict:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - provider URL from config
        return json.loads(response.read().decode())


def check_models(catalog: Catalog, models: list[ModelEntry], timeout: float = 10.0) -> list[Availability]:
    """Ask each provider's `/models` endpoint which of `models` it serves (one request per provider)."""
    listings: dict[str, set[str] | str] = {}
    found = []
    for model in models:
        if model.kind != "litellm":
            found.append(Availability(model.id, "offline-baseline"))
            continue
        if env := missing_key(catalog, model):
            found.append(Availability(model.id, "no-credentials", f"{env} is not set"))
            continue
        settings = provider_settings(catalog, model)
        base = (settings.api_base or "").rstrip("/")
        if base not in listings:
            key = os.environ.get(settings.api_key_env or "") or None
            try:
                listings[base] = {
                    str(m.get("id")) for m in _get_json(f"{base}/models", key, timeout).get("data", [])
                }
            except (urllib.error.URLError, OSError, ValueError) as e:
                listings[base] = f"{base}/models: {type(e).__name__}: {str(e)[:200]}"
        listing = listings[base]
        if isinstance(listing, str):
            found.append(Availability(model.id, "unreachable", listing))
        elif provider_model_id(model) in listing:
            found.append(Availability(model.id, "available"))
        elif not listing:
            found.append(Availability(model.id, "unlisted", f"{base}/models lists no models: cannot tell"))
        else:
            found.append(
                Availability(model.id, "unavailable", f"{provider_model_id(model)} not listed by {base}")
            )
    return found


def load_price_overrides(path: Path) -> dict[str, dict]:
    """config/prices.yaml (written by `models prices --refresh`): model id -> price fields, validated."""
    if not path.is_file():
        return {}
    from harness.config import PricesFile, load_yaml_model

    return {k: v.model_dump() for k, v in load_yaml_model(path, PricesFile).prices.items()}


def apply_prices(catalog: Catalog, overrides: dict[str, dict]) -> Catalog:
    models = [
        ModelEntry.model_validate({**m.model_dump(), **overrides[m.id]}) if m.id in overrides else m
        for m in catalog.models
    ]
    return Catalog(providers=catalog.providers, models=models)


def refresh_prices(
    catalog: Catalog, prices_path: Path, *, url: str = OPENROUTER_MODELS_URL, timeout: float = 20
) -> str:
    """Update config/prices.yaml from OpenRouter's public model list; offline, keep what is there."""
    import datetime

    import yaml

    current = load_price_overrides(prices_path)
    try:
        listing = {str(m.get("id")): m for m in _get_json(url, None, timeout).get("data", [])}
    except (urllib.error.URLError, OSError, ValueError) as e:
        return f"offline ({type(e).__name__}): kept {len(current)} price(s) in {prices_path} unchanged"
    today = datetime.date.today().isoformat()
    updated = 0
    for model in catalog.models:
        entry = listing.get(provider_model_id(model)) if model.provider == "openrouter" else None
        pricing = (entry or {}).get("pricing") or {}
        try:
            price_in, price_out = float(pricing["prompt"]) * 1e6, float(pricing["completion"]) * 1e6
        except (KeyError, TypeError, ValueError):
            continue
        current[model.id] = {
            "price_in_per_mtok": round(price_in, 6),
            "price_out_per_mtok": round(price_out, 6),
            "price_date": today,
            "price_source": url,
        }
        updated += 1
    header = (
        "# Written by `python -m harness models prices --refresh`; overrides catalog prices by model id.\n"
    )
    prices_path.write_text(header + yaml.safe_dump({"prices": current}, sort_keys=True))
    return f"updated {updated} price(s) from {url} into {prices_path}"
