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

from harness.config.catalog import missing_key, provider_model_id, provider_settings
from harness.config.loading import load_price_overrides
from harness.config.schema import Catalog, ModelEntry

OPENROUTER_MODELS_URL = "https://openrouter.ai/api/v1/models"


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
