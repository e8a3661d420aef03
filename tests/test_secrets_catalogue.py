"""The secrets catalogue (docs/secrets.md): each form a key can take, planted through a real run.

Every run is `pytest evals` in a subprocess against the bundled fixture instances, with the key in the
environment under a name that is not `*_API_KEY` (the model names it with `api_key_env`), and the project's
scripted OpenAI-compatible server as the provider: its `echo_key` fault answers 401 with the bearer token it
received repeated in one form (harness.demo.llm_server.ECHO_FORMS), as careless providers do. Each test then
scans every file the run wrote (records, trajectories, call logs, manifest, leaderboards, the ledger, the
pytest log file), the terminal output and the JUnit file for that form, and for every other form too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import yaml

from harness.demo.llm_server import ECHO_FORMS, Fault, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.infra.redaction import forms_of
from harness.results.records import RunPaths
from tests.conftest import ROOT
from tests.helpers import labelled_containers

pytestmark = pytest.mark.containers
KEY = 'sk-pl4nt"ed\\key/' + uuid.uuid4().hex[:24]
"""Quote, backslash and slash: its JSON-escaped, repr and URL-encoded forms differ from the raw key."""
SHORT = "Zq7Wx"
ENV_FILE_KEY = "sk-from-mini-dotenv-" + uuid.uuid4().hex[:16]


def _evals(tmp: Path, run_id: str, *args: str, env: dict, popen: bool = False):
    argv = [
        sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-m", "demo", "--check-models", "no",
        "--runs-dir", str(tmp / "runs"), "--run-id", run_id, "--credentials", str(tmp / "credentials.txt"),
        "--junitxml", str(tmp / "junit.xml"), "--log-file", str(tmp / "pytest.log"), "--log-file-level", "DEBUG",
        *args,
    ]  # fmt: skip
    (tmp / "credentials.txt").write_text("# keys for this test come from the environment\n")
    full_env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"} | env
    if popen:
        return subprocess.Popen(
            argv, cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
    return subprocess.run(argv, cwd=ROOT, env=full_env, capture_output=True, timeout=900)


def _written(tmp: Path) -> dict[str, bytes]:
    """Every file the run wrote (the credentials file is the test's input, not the run's output)."""
    return {str(p): p.read_bytes() for p in tmp.rglob("*") if p.is_file() and p.name != "credentials.txt"}


def _found(blobs: dict[str, bytes], needles: set[str]) -> list[tuple[str, str]]:
    return [(where, n) for where, blob in blobs.items() for n in needles if n.encode() in blob]


def _every_form(key: str) -> set[str]:
    half = len(key) // 2
    return forms_of(key) | {key[:half], key[half:]}


@pytest.fixture(scope="module")
def forms_run(fixture_images, tmp_path_factory):
    """12 cases (3 instances x 4 attempts); the first request of 10 of them gets one echo fault each."""
    tmp = tmp_path_factory.mktemp("forms")
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        server.add_faults(*(Fault("echo_key", form=form) for form in ECHO_FORMS))
        done = _evals(
            tmp, "forms", "--models", "sim", "--attempts", "4",
            "--model-spec", f"id=sim,litellm=openai/sim,api_base={server.url},api_key_env=SIMCRED",
            env={"SIMCRED": KEY},
        )  # fmt: skip
        served = server.faults_served
    blobs = _written(tmp) | {"terminal": done.stdout + done.stderr}
    return done, served, blobs, tmp / "runs" / "forms"


@pytest.mark.parametrize("form", list(ECHO_FORMS))
def test_a_key_echoed_in_this_form_is_redacted_everywhere(forms_run, form):
    done, served, blobs, run = forms_run
    assert served == len(ECHO_FORMS), "every echo fault must have been served"
    assert str(run.parent.parent / "junit.xml") in blobs and str(run.parent.parent / "pytest.log") in blobs
    echoed = ECHO_FORMS[form](KEY).removeprefix("Basic ").strip(".")
    assert _found(blobs, {echoed}) == [], f"the {form} echo of the key was written somewhere"
    assert _found(blobs, _every_form(KEY)) == []
    records = [json.loads(p.read_text()) for p in (run / "cases").glob("*.json")]
    redacted = [r for r in records if "[REDACTED:SIMCRED]" in r["message"]]
    assert len(redacted) == len(ECHO_FORMS), [r["message"] for r in records]  # echoed, then hidden
    assert all(r["outcome"] == "error" and "Incorrect API key" in r["message"] for r in redacted)
    assert b"[REDACTED:SIMCRED]" in blobs["terminal"] and b"Traceback" not in blobs["terminal"]


@pytest.fixture(scope="module")
def odd_keys_run(fixture_images, tmp_path_factory):
    """A 5-character key (SHORTCRED) and a key only in mini-swe-agent's own .env (OPENAI_API_KEY, read by
    litellm for a catalog model that names no key variable), both echoed raw."""
    tmp = tmp_path_factory.mktemp("odd")
    mini_home = tmp / "mini-home"
    mini_home.mkdir()
    (mini_home / ".env").write_text(f"OPENAI_API_KEY={ENV_FILE_KEY}\nMSWEA_COST_TRACKING=ignore_errors\n")
    cfg = tmp / "config"
    shutil.copytree(ROOT / "config", cfg)
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        catalog = yaml.safe_load((cfg / "model_catalog.yaml").read_text())
        catalog["models"].append(
            {"id": "envsim", "kind": "litellm", "provider": "openai", "litellm_id": "openai/sim",
             "api_base": server.url, "description": "key from mini-swe-agent's .env"}
        )  # fmt: skip
        (cfg / "model_catalog.yaml").write_text(yaml.safe_dump(catalog))
        server.add_faults(Fault("echo_key"), Fault("echo_key"))
        done = _evals(
            tmp, "odd", "--models", "envsim,short", "-k", "calc", "--harness-config", str(cfg),
            "--model-spec", f"id=short,litellm=openai/sim,api_base={server.url},api_key_env=SHORTCRED",
            env={"SHORTCRED": SHORT, "MSWEA_GLOBAL_CONFIG_DIR": str(mini_home)},
        )  # fmt: skip
        auths = {r["auth_sha256"] for r in server.requests}
    blobs = {k: v for k, v in _written(tmp).items() if "mini-home" not in k}
    return done, auths, blobs | {"terminal": done.stdout + done.stderr}, tmp / "runs" / "odd"


def _sha(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def test_a_short_key_is_redacted_where_it_stands_alone(odd_keys_run):
    import re

    done, auths, blobs, run = odd_keys_run
    assert _sha(SHORT) in auths, "the short key must have reached the provider"
    alone = re.compile(rb"(?<![A-Za-z0-9_])" + SHORT.encode() + rb"(?![A-Za-z0-9_])")
    assert [where for where, blob in blobs.items() if alone.search(blob)] == []
    assert b"SHORTCRED has 5 characters: hidden only where it stands alone" in blobs["terminal"]
    record = json.loads((run / "cases" / "short-fixtures__calc-1-a1.json").read_text())
    assert "Incorrect API key provided: [REDACTED:SHORTCRED]" in record["message"]


def test_a_key_from_mini_swe_agents_own_env_file_is_redacted(odd_keys_run):
    done, auths, blobs, run = odd_keys_run
    assert _sha(ENV_FILE_KEY) in auths, "litellm must have sent the key mini-swe-agent loaded from its .env"
    assert _found(blobs, _every_form(ENV_FILE_KEY)) == []
    assert b"holds OPENAI_API_KEY: keep keys in secrets/credentials.txt only" in blobs["terminal"]
    record = json.loads((run / "cases" / "envsim-fixtures__calc-1-a1.json").read_text())
    assert "[REDACTED:OPENAI_API_KEY]" in record["message"]


def _is_agent_server(process: psutil.Process) -> bool:
    try:
        return "harness.agents.server" in process.cmdline()
    except psutil.Error:
        return False


@pytest.mark.parametrize("agent_in_process", [False, True], ids=["agent-server", "in-process"])
def test_ctrl_c_during_a_request_prints_no_key(fixture_images, runtime, tmp_path, agent_in_process):
    """-l --fulltrace and Ctrl-C while the request is in flight. In the worker (--agent-in-process) pytest prints
    every frame's arguments, among them the request's kwargs with api_key: the terminal writer redacts them.
    In the agent server's fork the key is in no frame the terminal sees, and the interrupted agent's container
    is removed by the fork itself (the worker's closed connection interrupts it)."""
    run_id = f"ctrl-c-{'in' if agent_in_process else 'srv'}"
    with ScriptedLLMServer(list(FIXTURE_SCRIPTS)) as server:
        server.add_faults(Fault("latency", delay_s=120))
        proc = _evals(
            tmp_path, run_id, "--models", "sim", "-k", "calc", "-l", "--fulltrace",
            "--model-spec", f"id=sim,litellm=openai/sim,api_base={server.url},api_key_env=SIMCRED",
            *(["--agent-in-process"] if agent_in_process else []),
            env={"SIMCRED": KEY}, popen=True,
        )  # fmt: skip
        deadline = time.monotonic() + 300
        while not server.requests and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(1.0)
        servers = [p for p in psutil.Process(proc.pid).children(recursive=True) if _is_agent_server(p)]
        proc.send_signal(signal.SIGINT)  # the controller only, as the agent server's fork gets no signal
        output, _ = proc.communicate(timeout=300)
        _, alive = psutil.wait_procs(servers, timeout=30)
    assert server.requests, output.decode(errors="replace")[-3000:]
    assert b"KeyboardInterrupt" in output
    if agent_in_process:
        assert b"[REDACTED:SIMCRED]" in output, "the frames' arguments (api_key) were printed, redacted"
        assert servers == []
    else:
        assert len(servers) == 2, "the agent server and the fork running the agent"
        assert alive == [], "the interrupted agent's fork outlived its worker's connection"
    assert labelled_containers(runtime, run_label=RunPaths(tmp_path / "runs", run_id).run_label) == [], (
        "the interrupted agent's container was left"
    )
    blobs = _written(tmp_path) | {"terminal": output}
    assert _found(blobs, _every_form(KEY)) == []
