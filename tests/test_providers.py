"""Providers: --model-spec, keys, /models availability over real HTTP, price refresh online and offline."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.config import Catalog, HarnessConfig, ModelEntry, ProviderSettings
from harness.config.catalog import (
    apply_prices,
    missing_key,
    parse_model_spec,
    provider_model_id,
    provider_settings,
)
from harness.config.loading import load_price_overrides
from harness.demo.llm_server import ScriptedLLMServer
from harness.errors import HarnessError
from harness.infra.providers import check_models, refresh_prices
from tests.helpers import ROOT, run_cli


def test_model_spec_adds_an_openai_compatible_model():
    m = parse_model_spec(
        "id=local-qwen,litellm=openai/Qwen2.5-Coder,api_base=http://127.0.0.1:8000/v1,price_in=0.1"
    )
    assert (m.id, m.kind, m.provider, m.litellm_id) == (
        "local-qwen",
        "litellm",
        "openai-compatible",
        "openai/Qwen2.5-Coder",
    )
    assert (
        m.api_base == "http://127.0.0.1:8000/v1"
        and m.price_in_per_mtok == 0.1
        and m.price_out_per_mtok is None
    )
    assert not m.price_known


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("id=x,litellm=openai/m", "needs api_base"),
        ("id=x,litellm=openai/m,api_base=u,colour=red", "bad part 'colour'"),
        ("id=Bad Id,litellm=openai/m,api_base=u", "id"),
        ("id=x,litellm=openai/m,api_base=u,price_in=cheap", "price_in_per_mtok"),
    ],
)
def test_bad_model_specs_are_one_line_errors(spec, fragment):
    with pytest.raises(HarnessError) as err:
        parse_model_spec(spec)
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_model_spec_ids_must_not_clash_with_the_catalog():
    with pytest.raises(HarnessError, match="already in the catalog"):
        HarnessConfig(ROOT / "config", extra_models=[parse_model_spec("id=gold,litellm=openai/m,api_base=u")])


def test_keys_come_from_the_provider_or_the_entry(monkeypatch):
    catalog = Catalog(providers={"chutes": ProviderSettings(calls_per_day=5)}, models=[])
    chutes = ModelEntry(id="k", kind="litellm", provider="chutes", litellm_id="chutes/moonshotai/Kimi")
    assert provider_settings(catalog, chutes).api_key_env == "CHUTES_API_KEY"
    assert provider_settings(catalog, chutes).calls_per_day == 5
    monkeypatch.delenv("CHUTES_API_KEY", raising=False)
    assert missing_key(catalog, chutes) == "CHUTES_API_KEY"
    monkeypatch.setenv("CHUTES_API_KEY", "present-value")
    assert missing_key(catalog, chutes) is None
    keyless = parse_model_spec("id=l,litellm=openai/m,api_base=http://h/v1")
    assert missing_key(catalog, keyless) is None
    assert provider_model_id(chutes) == "moonshotai/Kimi"


def test_check_models_asks_each_provider_once(monkeypatch):
    monkeypatch.setenv("SIM_KEY", "sim-key-value-123")
    with ScriptedLLMServer(models=["served-model"]) as server, ScriptedLLMServer(models=["x"]) as other:
        base = f"api_base={server.url},api_key_env=SIM_KEY"
        models = [
            parse_model_spec(f"id=a,litellm=openai/served-model,{base}"),
            parse_model_spec(f"id=b,litellm=openai/renamed-model,{base}"),
            parse_model_spec(f"id=c,litellm=openai/served-model,{base}"),
            parse_model_spec(f"id=d,litellm=openai/x,api_base={other.url}"),
            ModelEntry(id="empty", kind="empty"),
        ]
        found = {a.model_id: a for a in check_models(Catalog(models=models), models)}
        asked, asked_other = list(server.model_list_requests), list(other.model_list_requests)
        url = server.url
    # three models behind one endpoint: one GET /models; the other endpoint: its own one
    assert [r["path"] for r in asked] == ["/v1/models"] and len(asked_other) == 1
    assert asked[0]["auth_sha256"] == hashlib.sha256(b"sim-key-value-123").hexdigest()
    assert asked_other[0]["auth_sha256"] == ""  # a keyless endpoint gets no Authorization header
    assert server.requests == [] and other.requests == []  # listing only: no chat request, nothing spent
    assert {k: a.status for k, a in found.items()} == {
        "a": "available",
        "b": "unavailable",
        "c": "available",
        "d": "available",
        "empty": "offline-baseline",
    }
    assert found["b"].detail == f"renamed-model not listed by {url}"
    unreachable = parse_model_spec("id=c,litellm=openai/m,api_base=http://127.0.0.1:9/v1")
    (c,) = check_models(Catalog(models=[unreachable]), [unreachable], timeout=2)
    assert c.status == "unreachable" and c.detail.startswith("http://127.0.0.1:9/v1/models: URLError")


class _Prices(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        body = json.dumps(
            {
                "data": [
                    {"id": "qwen/qwen3-coder", "pricing": {"prompt": "0.0000002", "completion": "0.0000008"}},
                    {"id": "other/model", "pricing": {"prompt": "1", "completion": "1"}},
                ]
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_price_refresh_online_then_offline_keeps_the_old_prices(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Prices)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/api/v1/models"
    catalog = Catalog(
        models=[
            ModelEntry(
                id="q", kind="litellm", provider="openrouter", litellm_id="openrouter/qwen/qwen3-coder"
            )
        ]
    )
    prices = tmp_path / "prices.yaml"
    assert "updated 1 price" in refresh_prices(catalog, prices, url=url)
    server.shutdown()
    saved = load_price_overrides(prices)["q"]
    assert saved["price_in_per_mtok"] == pytest.approx(0.2) and saved["price_out_per_mtok"] == pytest.approx(
        0.8
    )
    assert saved["price_source"] == url and saved["price_date"]
    before = prices.read_text()
    note = refresh_prices(catalog, prices, url="http://127.0.0.1:9/api/v1/models", timeout=2)
    assert note.startswith("offline") and prices.read_text() == before
    priced = apply_prices(catalog, load_price_overrides(prices)).get("q")
    assert priced.price_known and priced.price_out_per_mtok == pytest.approx(0.8)


def test_models_cli_without_credentials(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HARNESS_ROOT": str(ROOT)}
    done = run_cli("models", "check", "kimi-k2-0905", "nope", env=env)
    assert done.returncode == 2 and done.stderr.startswith("error: unknown model id 'nope'")
    done = run_cli("models", "check", "kimi-k2-0905", env=env)
    assert done.returncode == 0 and "no-credentials" in done.stdout and "CHUTES_API_KEY" in done.stdout
    done = run_cli("models", "prices", env=env)
    assert done.returncode == 0 and "qwen3-coder-or" in done.stdout and "unknown" in done.stdout


def test_preflight_records_unavailable_models_for_the_workers(tmp_path, monkeypatch):
    from harness.results.records import RunPaths
    from harness.run.preflight import check_availability

    with ScriptedLLMServer(models=["served"]) as server:
        spec = parse_model_spec(f"id=gone,litellm=openai/gone,api_base={server.url}")
        cfg = HarnessConfig(ROOT / "config", extra_models=[spec])
        paths = RunPaths(tmp_path, "r")
        lines = check_availability(cfg, [spec], paths)
        url = server.url
    assert lines == [f"model gone: unavailable (gone not listed by {url})"]
    assert json.loads((paths.root / "availability.json").read_text())["gone"]["status"] == "unavailable"
