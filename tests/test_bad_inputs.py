"""The bad-inputs catalogue (docs/bad-inputs.md): every row's input, fed to the real harness.

Each answer must be a one-line error (pytest usage error: exit 4 and exactly one `ERROR:` line; the
`python -m harness` CLI: exit 2 and one `error:` line) or a classified outcome in a written CaseRecord;
never a traceback, and nothing already recorded is lost.

Usage errors run `pytest evals` in a subprocess (a real run of the `empty` baseline, so a check that only
happens at run start is caught too). Agent and evaluator rows run in-process: `harness.run.case.run_case`
with a RunContext whose dataset lock (written here, with real fingerprints) holds variants of the fixture
rows, mini-swe-agent in the real fixture containers, the project's scripted OpenAI-compatible server over
real HTTP, and the official evaluator. Each test states the correct behaviour.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from harness.config import HarnessConfig
from harness.config.catalog import parse_model_spec
from harness.demo.llm_server import Fault, Script, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.errors import HarnessError
from harness.results.records import CaseRecord, RunPaths, write_record
from harness.run.case import run_case
from harness.run.context import RunContext
from harness.run.grid import Case
from tests.helpers import ROOT, config_with_splits, run_cli, run_evals

CALC = "fixtures__calc-1"
CALC_SCRIPT = FIXTURE_SCRIPTS[0]
SECRET = "sk-bad-inputs-never-echo-5e4d3c2b1a"


# ----- helpers: `pytest evals` in a subprocess ------------------------------------------------------------


def _evals(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return run_evals("-q", *args, env={"HF_HUB_OFFLINE": "1", **(env or {})}, timeout=timeout)


def _run_empty(tmp_path: Path, *args: str, run_id: str = "bad", env: dict | None = None):
    """A real demo run of the offline `empty` baseline (no containers needed by its cases)."""
    return _evals(
        "-m", "demo", "--models", "empty", "--runs-dir", str(tmp_path / "runs"), "--run-id", run_id,
        *args, env=env,
    )  # fmt: skip


def _one_error_line(done: subprocess.CompletedProcess, code: int = 4, prefix: str = "ERROR:") -> str:
    out = done.stdout + done.stderr
    assert done.returncode == code, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


def _records(run_dir: Path) -> list[Path]:
    return sorted((run_dir / "cases").glob("*.json")) if (run_dir / "cases").is_dir() else []


def _config_copy(tmp_path: Path) -> Path:
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    return cfg


def _break(text: str) -> str:
    return text + "\nbroken: [unclosed, {\n"


# ----- 1-14: every config file, malformed YAML and a typo'd key ---------------------------------------------

CONFIG_CASES = [
    pytest.param("model_catalog.yaml", _break, "line", id="model_catalog-malformed"),
    pytest.param(
        "model_catalog.yaml",
        lambda t: t.replace("    description: submits the instance's gold", "    descripton: submits", 1),
        "descripton",
        id="model_catalog-typo",
    ),
    pytest.param("sweagent.yaml", _break, "line", id="sweagent-malformed"),
    pytest.param(
        "sweagent.yaml",
        lambda t: t.replace("  usd_per_run:", "  usd_per_rn:", 1),
        "usd_per_rn",
        id="sweagent-typo",
    ),
    pytest.param("instances_i1.yaml", _break, "line", id="instances-malformed"),
    pytest.param(
        "instances_i1.yaml", lambda t: t.replace("\nrule:", "\nrules:", 1), "rule", id="instances-typo"
    ),
    pytest.param(
        "gates.yaml",
        _break,
        "line",
        id="gates-malformed",
    ),
    pytest.param(
        "gates.yaml",
        lambda t: t.replace("    max_rate: 0.10", "    max_rat: 0.10", 1),
        "max_rat",
        id="gates-typo",
    ),
    pytest.param(
        "leaderboard_columns.yaml",
        _break,
        "line",
        id="leaderboard_columns-malformed",
    ),
    pytest.param(
        "leaderboard_columns.yaml",
        lambda t: t.replace("default: v3", "defualt: v3", 1),
        "defualt",
        id="leaderboard_columns-typo",
    ),
    pytest.param("dataset.lock", _break, "line", id="dataset_lock-malformed"),
    pytest.param(
        "dataset.lock",
        lambda t: t.replace("snapshot_note:", "snapshot_not:", 1),
        "snapshot_not",
        id="dataset_lock-typo",
    ),
    pytest.param(
        "prices.yaml",
        lambda t: "prices:\n  gold: {price_in_per_mtok: [1.0\n",
        "line",
        id="prices-malformed",
    ),
    pytest.param(
        "prices.yaml",
        lambda t: "prices:\n  gold: {price_in_per_mtokk: 1.0}\n",
        "price_in_per_mtokk",
        id="prices-typo",
    ),
]


@pytest.mark.parametrize(("name", "edit", "named"), CONFIG_CASES)
def test_config_file_malformed_or_typo_is_one_error_before_any_case(tmp_path, name, edit, named):
    cfg = _config_copy(tmp_path)
    path = cfg / name
    path.write_text(edit(path.read_text() if path.is_file() else ""))
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(cfg)))
    assert name in line and named in line, line
    assert _records(tmp_path / "runs" / "bad") == [], "a broken config must refuse the run before any case"


@pytest.mark.parametrize(
    "name",
    [
        "sweagent.yaml",
        "model_catalog.yaml",
        pytest.param(
            "dataset.lock",
        ),
    ],
)
def test_config_file_not_utf8(tmp_path, name):
    cfg = _config_copy(tmp_path)
    with (cfg / name).open("ab") as f:
        f.write(b"\n# caf\xe9 \xff\xfe\n")
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(cfg)))
    assert name in line and "UTF-8" in line


# ----- command-line values ---------------------------------------------------------------------------------


def test_unknown_model_id(tmp_path):
    line = _one_error_line(
        _evals("-m", "demo", "--models", "gold,no-such-model", "--runs-dir", str(tmp_path))
    )
    assert "unknown model id 'no-such-model'" in line


def test_unknown_instance_id(tmp_path):
    cfg = _config_copy(tmp_path)
    path = cfg / "instances_i1.yaml"
    path.write_text(path.read_text().replace("sqlfluff__sqlfluff-1625", "sqlfluff__sqlfluff-99999", 1))
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(cfg)))
    assert "unknown instance id 'sqlfluff__sqlfluff-99999'" in line and "instances_i1.yaml" in line


@pytest.mark.parametrize("k", ["0", "-2"])
def test_attempts_below_one(tmp_path, k):
    line = _one_error_line(_run_empty(tmp_path, "--attempts", k))
    assert f"--attempts {k}: K must be at least 1" in line


@pytest.mark.parametrize("field", ["usd_per_run", "usd_per_case"])
def test_negative_budget(tmp_path, field):
    cfg = _config_copy(tmp_path)
    data = yaml.safe_load((cfg / "sweagent.yaml").read_text())
    data["budgets"][field] = -1
    (cfg / "sweagent.yaml").write_text(yaml.safe_dump(data))
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(cfg)))
    assert f"budgets.{field}" in line and "greater than or equal to 0" in line


def test_negative_calls_per_day(tmp_path):
    cfg = _config_copy(tmp_path)
    path = cfg / "model_catalog.yaml"
    path.write_text(path.read_text().replace("calls_per_day: 2000", "calls_per_day: -1", 1))
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(cfg)))
    assert "providers.chutes.calls_per_day" in line


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        pytest.param("garbage", "bad part 'garbage'; use id=,litellm=,api_base=", id="no-equals"),
        pytest.param(
            "id=local,litellm=openai/m", "provider openai-compatible needs api_base", id="no-api-base"
        ),
        pytest.param(
            "id=Bad Id,litellm=openai/m,api_base=http://127.0.0.1:9/v1",
            "id: String should match pattern '^[a-z0-9][a-z0-9._-]*$'",
            id="bad-id",
        ),
        pytest.param(
            "id=local,litellm=openai/m,api_base=http://127.0.0.1:9/v1,price_in=-3",
            "price_in_per_mtok: Input should be greater than or equal to 0",
            id="negative-price",
        ),
        pytest.param(
            "id=gold,litellm=openai/m,api_base=http://127.0.0.1:9/v1",
            "--model-spec id 'gold' is already in the catalog; pick another id",
            id="clashes-with-the-catalog",
        ),
        pytest.param(
            "id=local,litellm=openai/m,api_base=http://127.0.0.1:9/v1,api_base=http://127.0.0.1:8/v1",
            "api_base= is given twice; give each key once",
            id="key-given-twice",
        ),
        pytest.param(
            "id=local,litellm=openai/m,api_base=http://127.0.0.1:9/v1,price_in=inf,price_out=1",
            "price_in_per_mtok: Input should be a finite number",
            id="infinite-price",
        ),
    ],
)
def test_model_spec_malformed(tmp_path, spec, says):
    line = _one_error_line(_run_empty(tmp_path, "--model-spec", spec))
    assert line.startswith("ERROR: --model-spec ") and says in line, line
    assert _records(tmp_path / "runs" / "bad") == []


@pytest.mark.parametrize("option", ["--dataset-source", "--agent", "--check-models"])
def test_unknown_option_value(tmp_path, option):
    done = _run_empty(tmp_path, option, "bogus")
    _one_error_line(done)
    assert f"argument {option}: invalid choice: 'bogus'" in done.stderr


def test_harness_config_missing_dir(tmp_path):
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(tmp_path / "no-such-config")))
    assert "no-such-config/model_catalog.yaml: file not found" in line


def test_resume_of_a_run_that_does_not_exist(tmp_path):
    line = _one_error_line(
        _evals("-m", "demo", "--models", "empty", "--runs-dir", str(tmp_path), "--resume", "nope")
    )
    assert "--resume nope: no run at" in line


def test_run_id_of_a_run_that_already_has_records(tmp_path):
    first = _run_empty(tmp_path, run_id="taken")
    assert first.returncode == 0, first.stdout[-2000:]
    before = {p: p.read_bytes() for p in _records(tmp_path / "runs" / "taken")}
    line = _one_error_line(_run_empty(tmp_path, run_id="taken"))
    assert "already has records" in line and "--resume taken" in line
    assert {p: p.read_bytes() for p in _records(tmp_path / "runs" / "taken")} == before


@pytest.mark.parametrize("run_id", ["my run+1", "../escaped"])
def test_run_id_that_is_not_a_safe_name(tmp_path, run_id):
    line = _one_error_line(_run_empty(tmp_path, run_id=run_id))
    assert "--run-id" in line
    assert not (tmp_path / "escaped").exists()


def test_workers_above_the_cap_are_capped_with_a_message(tmp_path):
    done = _evals("-m", "demo", "-n", "10000", "--collect-only", "--runs-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "swebench-harness: -n 10000 capped at 12 agent workers (DESIGN: at most 12;" in done.stderr


def test_workers_above_the_cap_are_really_not_started(tmp_path):
    """xdist turns -n into worker specs before the plugin's configure: the cap is applied before that."""
    done = _run_empty(tmp_path, "-n", "13", "-v", "-k", "calc")
    assert "capped at 12" in done.stderr
    assert "created: 12/12 workers" in done.stdout, done.stdout[-2000:]
    assert "[gw12]" not in done.stdout and done.returncode == 0


def test_the_workers_that_start_are_the_ones_announced(tmp_path):
    """-n 8 on a 2-thread machine: agent workers wait on the LLM, so they are not cut to the CPU count;
    the header says what was chosen and that many workers start."""
    done = _run_empty(tmp_path, "-n", "8", "-k", "calc", "-v")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "capped" not in done.stderr
    assert (
        "swebench-harness: concurrency: 8 agent worker(s) (LLM-bound); up to 4 evaluation slot(s)"
        in done.stdout
    )
    assert "created: 8/8 workers" in done.stdout, done.stdout[-2000:]


def test_agent_sweagent_without_sweagent_installed_stops_at_once(tmp_path):
    """The CI situation (SWE-agent is not on PyPI): one line, before any run folder exists."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['sweagent'] = None  # not installed\n")
    started = time.monotonic()
    done = _evals(
        "-m", "demo", "--agent", "sweagent", "--runs-dir", str(tmp_path / "runs"), "--run-id", "swe",
        env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    line = _one_error_line(done)
    assert line == (
        "ERROR: --agent sweagent: SWE-agent is not installed; run `make sweagent` "
        "(SWE-agent 1.1.0 from its git tag, see README)"
    )
    assert time.monotonic() - started < 60 and not (tmp_path / "runs").exists()


def test_negative_infra_retries(tmp_path):
    line = _one_error_line(_run_empty(tmp_path, "--infra-retries", "-1"))
    assert "--infra-retries" in line


@pytest.mark.parametrize("n", ["0", "-1"])
def test_eval_workers_below_one(tmp_path, n):
    line = _one_error_line(_run_empty(tmp_path, "--eval-workers", n))
    assert "--eval-workers" in line


# ----- credentials -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "lineno", "what"),
    [
        (f"# creds\nCHUTES_API_KEY=sk-fine-value-123456\nOPENROUTER_API_KEY {SECRET}\n", 3, "no '='"),
        (f'CHUTES_API_KEY="{SECRET}\n', 1, "no closing"),
        (f"\n\n9BAD-NAME={SECRET}\n", 3, "not a valid variable name"),
        (f"CHUTES_API_KEY='{SECRET}' trailing {SECRET}\n", 1, "unexpected text after the closing quote"),
    ],
)
def test_credentials_file_with_a_bad_line(tmp_path, text, lineno, what):
    creds = tmp_path / "credentials.txt"
    creds.write_text(text)
    done = _run_empty(tmp_path, "--credentials", str(creds))
    line = _one_error_line(done)
    assert f"line {lineno}:" in line and what in line, line
    assert SECRET not in done.stdout + done.stderr, "a credentials error must never echo the value"


def test_credentials_file_not_utf8(tmp_path):
    creds = tmp_path / "credentials.txt"
    creds.write_bytes(b"CHUTES_API_KEY=\xff\xfe" + SECRET.encode() + b"\n")
    done = _run_empty(tmp_path, "--credentials", str(creds))
    assert "not UTF-8" in _one_error_line(done)
    assert SECRET not in done.stdout + done.stderr


def test_credentials_path_pointing_nowhere(tmp_path):
    line = _one_error_line(_run_empty(tmp_path, "--credentials", str(tmp_path / "nowhere.txt")))
    assert "nowhere.txt: no such file" in line


# ----- dataset: fingerprint mismatch, missing file ---------------------------------------------------------


def _harness_root(tmp_path: Path, tamper: bool) -> Path:
    """A HARNESS_ROOT whose data/ the lock's relative file paths resolve against (cfg.root / entry.file)."""
    root = tmp_path / "root"
    (root / "data" / "swebench_lite").mkdir(parents=True)
    for name in ("dev.jsonl", "test.jsonl"):
        shutil.copy(ROOT / "data" / "swebench_lite" / name, root / "data" / "swebench_lite" / name)
    if tamper:
        path = root / "data" / "swebench_lite" / "dev.jsonl"
        lines = path.read_text().splitlines()
        row = json.loads(lines[0])
        row["problem_statement"] += "\n(tampered)"
        lines[0] = json.dumps(row)
        path.write_text("\n".join(lines) + "\n")
    return root


def test_dataset_fingerprint_mismatch_refuses_the_run(tmp_path):
    root = _harness_root(tmp_path, tamper=True)
    done = _evals(
        "-m", "i0", "--models", "empty", "--dataset-source", "snapshot", "--runs-dir", str(tmp_path / "runs"),
        "--run-id", "fp", env={"HARNESS_ROOT": str(root)},
    )  # fmt: skip
    assert "fingerprint mismatch" in _one_error_line(done)
    assert _records(tmp_path / "runs" / "fp") == []


def test_dataset_fingerprint_mismatch_cli_verify(tmp_path):
    root = _harness_root(tmp_path, tamper=True)
    done = run_cli("--config", str(ROOT / "config"), "dataset", "verify", env={"HARNESS_ROOT": str(root)})
    line = _one_error_line(done, code=2, prefix="error:")
    assert "fingerprint mismatch" in line and "dev" in line


@pytest.mark.parametrize("junk", [b"not json {\n", b"\xff\xfe\n"], ids=["not-json", "not-utf8"])
def test_data_file_with_a_corrupt_line(tmp_path, junk):
    root = _harness_root(tmp_path, tamper=False)
    with (root / "data" / "swebench_lite" / "dev.jsonl").open("ab") as f:
        f.write(junk)
    line = _one_error_line(_run_empty(tmp_path, env={"HARNESS_ROOT": str(root)}))
    assert "dev.jsonl" in line


def test_missing_data_file(tmp_path):
    root = _harness_root(tmp_path, tamper=False)
    (root / "data" / "swebench_lite" / "dev.jsonl").unlink()
    line = _one_error_line(_run_empty(tmp_path, env={"HARNESS_ROOT": str(root)}))
    assert "data/swebench_lite/dev.jsonl (split dev) is missing" in line


# ----- a resumed run with damaged records ------------------------------------------------------------------


def test_corrupt_record_in_a_resumed_run_is_set_aside_and_rerun(tmp_path):
    assert _run_empty(tmp_path, run_id="r").returncode == 0
    cases = tmp_path / "runs" / "r" / "cases"
    torn = cases / f"empty-{CALC}-a1.json"
    torn.write_bytes(b'{"schema_version": 1, "run_id": "r", "case_id": "empty-fixt\x00\xff garbage')
    done = _evals("-m", "demo", "--models", "empty", "--runs-dir", str(tmp_path / "runs"), "--resume", "r")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Traceback" not in done.stdout + done.stderr
    aside = list(cases.glob(f"empty-{CALC}-a1.json.corrupt-*"))
    assert len(aside) == 1 and b"garbage" in aside[0].read_bytes(), "the torn file is kept, not deleted"
    record = CaseRecord.model_validate_json(torn.read_text())
    assert record.outcome_class == "empty-patch"
    assert len(_records(tmp_path / "runs" / "r")) == 3


def test_record_that_is_json_but_not_a_caserecord_is_set_aside_and_rerun(tmp_path):
    assert _run_empty(tmp_path, run_id="r").returncode == 0
    cases = tmp_path / "runs" / "r" / "cases"
    foreign = cases / f"empty-{CALC}-a1.json"
    foreign.write_text('{"outcome": "unresolved", "note": "hand-edited"}\n')
    done = _evals("-m", "demo", "--models", "empty", "--runs-dir", str(tmp_path / "runs"), "--resume", "r")
    assert done.returncode == 0, done.stdout[-2000:]
    assert len(list(cases.glob(f"empty-{CALC}-a1.json.corrupt-*"))) == 1
    CaseRecord.model_validate_json(foreign.read_text())


# ----- in-process: run_case on variants of the fixture rows ------------------------------------------------

DOES_NOT_APPLY = """diff --git a/calc/missing.py b/calc/missing.py
--- a/calc/missing.py
+++ b/calc/missing.py
@@ -1 +1 @@
-old
+new
"""
LONG_STATEMENT_BYTES = 2_000_000
HUGE_OUTPUT_BYTES = 30_000_000
HUGE = f"head -c {HUGE_OUTPUT_BYTES} /dev/zero | tr '\\0' y"
NOT_UTF8 = "printf 'before \\xff\\xfe\\x80 after\\n'; printf '\\xc3\\x28\\xa0\\xa1\\n'"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout


def _patch_variants(tmp: Path, row: dict) -> dict[str, str]:
    """Patches against the calc fixture's base commit, made with real git in a fresh copy of its repo."""
    from harness.demo.fixtures import FIXTURES, build_fixture_repo

    repo = tmp / "calc-repo"
    assert build_fixture_repo(FIXTURES[0], repo)["base_commit"] == row["base_commit"]
    (repo / "calc" / "blob.bin").write_bytes(bytes(range(256)) * 8)
    _git(repo, "add", "-N", "calc/blob.bin")
    binary_only = _git(repo, "diff", "--binary", "HEAD")
    _git(repo, "reset", "-q")
    (repo / "calc" / "blob.bin").unlink()
    _git(repo, "rm", "-q", "calc/stats.py")
    delete = _git(repo, "diff", "--cached", "HEAD")
    _git(repo, "reset", "-q", "--hard")
    _git(repo, "rm", "-q", "calc/__init__.py")
    delete_init = _git(repo, "diff", "--cached", "HEAD")
    _git(repo, "reset", "-q", "--hard")
    assert "GIT binary patch" in binary_only and "deleted file mode" in delete
    return {
        "p-empty": "",
        "p-whitespace": "\n  \n",
        "p-notdiff": "I fixed it: mean() now raises ValueError.\n",
        "p-noapply": DOES_NOT_APPLY,
        "p-testonly": row["test_patch"],
        "p-binary": row["patch"] + binary_only,
        "p-binonly": binary_only,
        "p-delete": delete,
        "p-delete+gold": row["patch"] + delete_init,
    }


def _small_limits(agent: dict) -> None:
    agent["agent"]["step_limit"] = 8
    agent["retries"]["max_attempts"] = 1


class Lab:
    """A config copy (small step limit), a dataset lock over variant splits, the `sim` model on `llm`."""

    def __init__(self, tmp: Path, rows: dict[str, dict], llm: ScriptedLLMServer):
        calc = rows[CALC]
        filler = ("The quick brown fox jumps over the lazy dog; padding the report. " * 2 + "\n") * (
            LONG_STATEMENT_BYTES // 131
        )
        self.splits: dict[str, list[dict]] = {
            "fx": list(rows.values()),
            "long": [{**calc, "problem_statement": calc["problem_statement"] + "\n" + filler}],
            "badver": [{**calc, "version": "9.9"}],
            **{name: [{**calc, "patch": p}] for name, p in _patch_variants(tmp, calc).items()},
        }
        cfg_dir = config_with_splits(tmp, self.splits, agent=_small_limits)
        sim = parse_model_spec(f"id=sim,litellm=openai/sim,api_base={llm.url}")
        self.cfg = HarnessConfig(cfg_dir, root=tmp, extra_models=[sim])
        self.llm = llm

    def ctx(self, runs: Path) -> RunContext:
        return RunContext(
            self.cfg, f"bad-inputs-{uuid.uuid4().hex[:8]}", runs, namespace="localhost", eval_workers=1,
            dataset_source="snapshot",
        )  # fmt: skip


def _case(model: str, split: str, instance: str = CALC, attempt: int = 1) -> Case:
    return Case(model, instance, attempt, split, ("demo",), (120,))


@pytest.fixture(scope="module")
def llm():
    with ScriptedLLMServer([]) as server:
        yield server


@pytest.fixture(scope="module")
def lab(fixture_rows, llm, tmp_path_factory) -> Lab:
    return Lab(tmp_path_factory.mktemp("bad-inputs-lab"), fixture_rows, llm)


@pytest.fixture
def ctx(lab, tmp_path):
    context = lab.ctx(tmp_path / "runs")
    yield context
    context.close()


def _on_disk(ctx: RunContext, record: CaseRecord) -> CaseRecord:
    """The record run_case returned must be the one on disk, and its message one line."""
    stored = CaseRecord.model_validate_json(ctx.paths.record(record.case_id).read_text())
    assert stored == record
    assert "\n" not in record.message and "Traceback" not in record.message, record.message
    return stored


def _sim(lab: Lab, ctx: RunContext, script: Script, split: str = "fx", faults: tuple = ()) -> CaseRecord:
    lab.llm.scripts = [script]
    lab.llm.add_faults(*faults)
    return _on_disk(ctx, run_case(ctx, _case("sim", split)))


@pytest.mark.containers
def test_model_that_emits_no_command_is_format_errors(lab, ctx, fixture_images):
    served = lab.llm.faults_served
    record = _sim(lab, ctx, CALC_SCRIPT, faults=(Fault("no_tool_call"),) * 3)
    assert lab.llm.faults_served - served == 3
    assert (record.outcome, record.outcome_class) == ("unresolved", "format-errors")
    assert record.agent_exit_status == "RepeatedFormatError" and record.telemetry.calls == 3


@pytest.mark.containers
def test_model_that_never_submits_is_step_limit(lab, ctx, fixture_images):
    record = _sim(lab, ctx, Script(match=CALC_SCRIPT.match, steps=["ls"] * 20))
    assert (record.outcome, record.outcome_class, record.steps) == ("unresolved", "step-limit", 8)


@pytest.fixture(scope="module")
def huge_run(lab, fixture_images, tmp_path_factory):
    context = lab.ctx(tmp_path_factory.mktemp("huge") / "runs")
    before = len(lab.llm.requests)
    record = _sim(lab, context, Script(match=CALC_SCRIPT.match, steps=[HUGE, *CALC_SCRIPT.steps]))
    context.close()
    return record, context.paths, lab.llm.requests[before:]


@pytest.mark.containers
def test_huge_command_output_is_truncated_for_the_model_and_the_case_goes_on(huge_run):
    record, _, requests = huge_run
    assert (record.outcome, record.outcome_class) == ("resolved", "resolved")
    second = json.dumps(requests[1]["body"]["messages"])
    assert "characters elided" in second and len(second) < 100_000


@pytest.mark.containers
def test_huge_command_output_keeps_the_trajectory_bounded(huge_run):
    record, paths, _ = huge_run
    trajectory = paths.root / record.artifacts["trajectory"]
    assert trajectory.stat().st_size < 2_000_000


@pytest.mark.containers
def test_non_utf8_command_output(lab, ctx, fixture_images):
    record = _sim(lab, ctx, Script(match=CALC_SCRIPT.match, steps=[NOT_UTF8, *CALC_SCRIPT.steps]))
    assert (record.outcome, record.outcome_class) == ("resolved", "resolved")
    trajectory = json.loads((ctx.paths.root / record.artifacts["trajectory"]).read_text(encoding="utf-8"))
    observation = json.dumps(trajectory["messages"], ensure_ascii=False)
    assert "before \ufffd\ufffd\ufffd after" in observation


@pytest.mark.containers
def test_extremely_long_problem_statement(lab, ctx, fixture_images):
    before = len(lab.llm.requests)
    record = _sim(lab, ctx, CALC_SCRIPT, split="long")
    assert (record.outcome, record.outcome_class) == ("resolved", "resolved")
    first = json.dumps(lab.llm.requests[before]["body"]["messages"])
    assert len(first) > LONG_STATEMENT_BYTES
    assert record.telemetry.prompt_tokens > LONG_STATEMENT_BYTES // 4


PATCH_CASES = [
    pytest.param("p-empty", "unresolved", "empty-patch", "no patch submitted", id="empty"),
    pytest.param("p-whitespace", "unresolved", "empty-patch", "no patch submitted", id="whitespace-only"),
    pytest.param("p-notdiff", "unresolved", "malformed-patch", "not a unified diff", id="not-a-diff"),
    pytest.param("p-noapply", "unresolved", "patch-apply-failed", "does not apply", id="does-not-apply"),
    pytest.param("p-testonly", "unresolved", "unresolved", "test_mean_empty_raises", id="tests-only"),
    pytest.param("p-binary", "resolved", "resolved", "", id="binary+fix"),
    pytest.param(
        "p-binonly",
        "unresolved",
        "unresolved",
        "test_mean_empty_raises",
        id="binary-only",
    ),
    pytest.param("p-delete", "unresolved", "unresolved", "PASS_TO_PASS failing", id="deletes-the-module"),
    pytest.param("p-delete+gold", "resolved", "resolved", "", id="deletes-a-file+fix"),
]


@pytest.mark.containers
@pytest.mark.parametrize(("split", "outcome", "outcome_class", "message"), PATCH_CASES)
def test_bad_patches_get_a_classified_outcome(
    lab, ctx, fixture_images, split, outcome, outcome_class, message
):
    record = _on_disk(ctx, run_case(ctx, _case("gold", split)))
    assert (record.outcome, record.outcome_class) == (outcome, outcome_class), record.message
    assert message in record.message
    assert record.patch == lab.splits[split][0]["patch"], "the submitted patch is kept in the record"


@pytest.mark.containers
def test_container_runtime_gone_before_evaluation_is_an_infra_record(lab, ctx, fixture_images, monkeypatch):
    ctx.runtime  # noqa: B018 - detected while it was up
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/harness-gone.sock")
    record = _on_disk(ctx, run_case(ctx, _case("gold", "fx")))
    assert record.outcome == "error" and record.outcome_class in ("evaluator-error", "container-error")
    assert record.patch == lab.splits["fx"][0]["patch"]


@pytest.mark.containers
def test_evaluator_crash_is_an_evaluator_error_record(lab, ctx, fixture_images):
    record = _on_disk(ctx, run_case(ctx, _case("gold", "badver")))
    assert (record.outcome, record.outcome_class) == ("error", "evaluator-error")
    assert "9.9" in record.message


# ----- disk full while writing a record --------------------------------------------------------------------


def _disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("op", ["fsync", "replace"])
def test_disk_full_while_writing_a_record_keeps_the_old_one(ctx, monkeypatch, op):
    case = _case("empty", "fx")
    path = ctx.paths.record(case.case_id)
    run_case(ctx, case)
    old = path.read_bytes()
    monkeypatch.setattr(os, op, _disk_full)  # the OS edge: the disk fills while the record is written
    with pytest.raises((OSError, HarnessError)):
        run_case(ctx, case)
    monkeypatch.undo()
    assert path.read_bytes() == old, "the earlier record must survive a failed rewrite"
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_disk_full_while_writing_a_record_is_one_line(ctx, monkeypatch):
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(HarnessError) as failed:
        run_case(ctx, _case("empty", "fx"))
    assert "No space left on device" in str(failed.value) and "\n" not in str(failed.value)


# ----- a provider that is not there ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unreachable_run(fixture_images, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("unreachable")
    cfg = _config_copy(tmp)
    agent = yaml.safe_load((cfg / "sweagent.yaml").read_text())
    agent["retries"]["max_attempts"] = 1
    (cfg / "sweagent.yaml").write_text(yaml.safe_dump(agent))
    done = _evals(
        "-m", "demo", "--models", "down", "-k", "calc", "--harness-config", str(cfg), "--check-models", "no",
        "--runs-dir", str(tmp / "runs"), "--run-id", "down",
        "--model-spec", "id=down,litellm=openai/down,api_base=http://127.0.0.1:9/v1",
    )  # fmt: skip
    return done, tmp / "runs" / "down"


@pytest.mark.containers
def test_unreachable_provider_is_an_infra_record(unreachable_run):
    done, run = unreachable_run
    assert done.returncode == 1, done.stdout[-2000:]
    [path] = _records(run)
    record = CaseRecord.model_validate_json(path.read_text())
    assert (record.outcome, record.outcome_class) == ("error", "provider-error")
    assert "\n" not in record.message and "--resume down" in done.stdout


@pytest.mark.containers
def test_unreachable_provider_is_reported_in_one_line(unreachable_run):
    done, _ = unreachable_run
    assert "def case_record" not in done.stdout and "plugin.py:" not in done.stdout, done.stdout[-3000:]
    assert "provider-error: ProviderRetriesExhausted" in done.stdout


# ----- issue 11: budgets under both backends, keys everywhere, a second process, one-line errors -------------


def _cfg_edit(tmp_path: Path, name: str, edit) -> Path:
    cfg = _config_copy(tmp_path)
    data = yaml.safe_load((cfg / name).read_text())
    edit(data)
    (cfg / name).write_text(yaml.safe_dump(data))
    return cfg


@pytest.mark.containers
def test_a_case_over_its_usd_cap_is_cost_limit(lab, fixture_images, tmp_path):
    """usd_per_case reached mid-case: the case's own budget is spent, a model outcome (as SWE-agent's exit_cost)."""
    cfg = HarnessConfig(
        _cfg_edit(tmp_path, "sweagent.yaml", lambda d: d.update(budgets={"usd_per_case": 0.01})),
        root=lab.cfg.root,
        extra_models=[
            parse_model_spec(f"id=sim,litellm=openai/sim,api_base={lab.llm.url},price_in=10,price_out=10")
        ],
    )
    (cfg.dir / "dataset.lock").write_text((lab.cfg.dir / "dataset.lock").read_text())
    context = RunContext(
        cfg, "cap", tmp_path / "runs", namespace="localhost", eval_workers=1, dataset_source="snapshot"
    )
    try:
        lab.llm.scripts = [CALC_SCRIPT]
        record = _on_disk(context, run_case(context, _case("sim", "fx")))
    finally:
        context.close()
    assert (record.outcome, record.outcome_class) == ("unresolved", "cost-limit"), record.message
    assert context.ledger.spent_usd(case_id=record.case_id) >= 0.01
    assert context.ledger.summary()["run_calls"] == record.telemetry.calls


def test_a_key_in_a_variable_of_any_name_is_registered(tmp_path, monkeypatch):
    """api_key_env=ANY_NAME (not *_API_KEY), set only in the shell: its value is redacted like the others."""
    from harness.infra import secrets
    from harness.run.lifecycle import EvalRun, RunOptions

    monkeypatch.setenv("SIMCRED", SECRET)
    secrets._reset_for_tests()
    EvalRun(
        RunOptions(
            config_dir=ROOT / "config", runs_dir=tmp_path / "runs", credentials=tmp_path / "none.txt",
            model_specs=("id=sim,litellm=openai/sim,api_base=http://127.0.0.1:9/v1,api_key_env=SIMCRED",),
            models=("sim",), markexpr="demo", collect_only=True,
        )
    )  # fmt: skip
    assert secrets.redact_text(f"echo {SECRET}") == "echo [REDACTED:SIMCRED]"


def test_a_key_in_an_agents_own_env_file_is_registered_and_named(tmp_path, monkeypatch):
    """mini-swe-agent loads its global .env into os.environ by itself: those keys are redacted too."""
    from harness.infra import secrets
    from harness.run.lifecycle import EvalRun, RunOptions

    (tmp_path / ".env").write_text(f"OPENAI_API_KEY={SECRET}\nMSWEA_MODEL_NAME=openai/gpt-5\n")
    monkeypatch.setenv("MSWEA_GLOBAL_CONFIG_DIR", str(tmp_path))
    secrets._reset_for_tests()
    run = EvalRun(
        RunOptions(config_dir=ROOT / "config", runs_dir=tmp_path / "runs", credentials=tmp_path / "none.txt",
                   models=("empty",), markexpr="demo", collect_only=True)
    )  # fmt: skip
    assert secrets.redact_text(SECRET) == "[REDACTED:OPENAI_API_KEY]"
    assert secrets.redact_text("openai/gpt-5") == "openai/gpt-5"  # not a key: not registered
    assert any("holds OPENAI_API_KEY: keep keys in secrets/credentials.txt only" in n for n in run.key_notes)


@pytest.mark.containers
def test_disk_full_during_a_run_is_one_line_and_a_recorded_infra_error(fixture_images, tmp_path, tmpfs):
    """The run folder is a 600 kB tmpfs (a real ENOSPC); the model repeats the key and its commands print
    100 kB each, so the trajectory outgrows the disk mid-case."""
    run_dir = tmpfs("runs/full", 600)
    big = "head -c 300000 /dev/zero | tr '\\0' y"
    script = Script(match=CALC_SCRIPT.match, thought=f"the key is {SECRET}", steps=[big] * 12)
    with ScriptedLLMServer([script]) as server:
        done = _evals(
            "-m", "demo", "--models", "sim", "-k", "calc", "--check-models", "no", "--runs-dir",
            str(tmp_path / "runs"), "--run-id", "full", "--junitxml", str(tmp_path / "junit.xml"),
            "--model-spec", f"id=sim,litellm=openai/sim,api_base={server.url},api_key_env=SIMCRED",
            env={"SIMCRED": SECRET}, timeout=600,
        )  # fmt: skip
    out = done.stdout + done.stderr
    assert done.returncode in (1, 4) and "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    assert any("No space left on device" in line and "--resume full" in line for line in out.splitlines())
    [record] = [CaseRecord.model_validate_json(p.read_text()) for p in _records(run_dir)]
    assert record.outcome == "error" and "No space left on device" in record.message
    written = [p for p in [*run_dir.rglob("*"), tmp_path / "junit.xml"] if p.is_file()]
    assert [str(p) for p in written if SECRET.encode() in p.read_bytes()] == [] and SECRET not in out
    assert (
        "[REDACTED:SIMCRED]" in (run_dir / record.artifacts["trajectory"].removeprefix("full/")).read_text()
    )


def test_a_full_disk_still_redacts_a_file_in_place(tmp_path, tmpfs):
    """A file someone else wrote (SWE-agent, the evaluator) on a disk with no room for a redacted copy."""
    from harness.infra import secrets

    disk = tmpfs("disk", 64)
    path = disk / "sweagent.log"
    path.write_bytes(b"x" * 30_000 + f" key={SECRET} ".encode() + b"y" * 30_000)
    with open(disk / "filler", "wb", buffering=0) as filler, pytest.raises(OSError):
        while True:
            filler.write(b"\0" * 4096)
    secrets._reset_for_tests()
    secrets.register_secret(SECRET, "SIMCRED")
    assert secrets.redact_file(path) == 1
    data = path.read_bytes()
    assert (
        SECRET.encode() not in data
        and b"key=[REDACTED:SIMCRED]" in data
        and len(data) == 60_000 + len(SECRET) + 6
    )
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "sweagent.log"]


@pytest.mark.containers
def test_resume_of_a_live_run_is_refused_and_the_run_is_intact(fixture_images, tmp_path):
    """A second `--resume` while the run's only case waits on a slow model: refused in one line; the live
    case is not set aside, its container not removed, and it finishes resolved."""
    runs = tmp_path / "runs"
    with ScriptedLLMServer([CALC_SCRIPT]) as server:
        server.add_faults(Fault("latency", delay_s=20))
        spec = f"id=sim,litellm=openai/sim,api_base={server.url}"
        args = [
            "-m",
            "demo",
            "--models",
            "sim",
            "-k",
            "calc",
            "--check-models",
            "no",
            "--runs-dir",
            str(runs),
        ]
        live = subprocess.Popen(
            [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-q", *args, "--run-id", "live",
             "--model-spec", spec],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTEST_ADDOPTS": "", "HF_HUB_OFFLINE": "1"},
        )  # fmt: skip
        for _ in range(600):
            if server.requests and list((runs / "live" / "cases").glob("*.running")):
                break
            time.sleep(0.1)
        assert server.requests, "the live run must be waiting on the model"
        second = _evals(*args, "--resume", "live", "--model-spec", spec)
        still_running = live.poll() is None
        output, _ = live.communicate(timeout=600)
    line = _one_error_line(second)
    assert "run live is running in another process (pid" in line and "--resume live" in line
    assert still_running, "the refusal must come while the first run is still running"
    assert live.returncode == 0, output[-3000:]
    [record] = [CaseRecord.model_validate_json(p.read_text()) for p in _records(runs / "live")]
    assert record.outcome == "resolved"
    assert [p.name for p in (runs / "live" / "artifacts").iterdir() if ".interrupted-" in p.name] == []
    assert "resumes" not in json.loads((runs / "live" / "manifest.json").read_text())


def test_read_only_runs_dir_is_one_line(tmp_path, tmpfs):
    runs = tmpfs("ro-runs", 64, readonly=True)
    line = _one_error_line(
        _evals("-m", "demo", "--models", "empty", "--runs-dir", str(runs), "--run-id", "ro")
    )
    assert "cannot write the run folder" in line and "Read-only file system" in line


@pytest.mark.parametrize("junk", [b"garbage {\n", b"[]\n"], ids=["garbage", "list"])
def test_resume_with_a_broken_manifest_is_one_line(tmp_path, junk):
    assert _run_empty(tmp_path, run_id="torn").returncode == 0
    (tmp_path / "runs" / "torn" / "manifest.json").write_bytes(junk)
    before = {p: p.read_bytes() for p in _records(tmp_path / "runs" / "torn")}
    line = _one_error_line(
        _evals("-m", "demo", "--models", "empty", "--runs-dir", str(tmp_path / "runs"), "--resume", "torn")
    )
    assert "--resume torn:" in line and "manifest.json is not" in line
    assert {p: p.read_bytes() for p in _records(tmp_path / "runs" / "torn")} == before


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("case_timeout_s", 10**20),
        ("case_timeout_s", 1.0e15),
        ("agent_timeout_s", 10**20),
        ("command_timeout_s", 10**20),
    ],
)
def test_a_timeout_too_large_for_a_timer_is_one_line(tmp_path, field, value):
    """`case_timeout_s: 100000000000000000000` (or 1.0e+15) passed validation and overflowed pytest-timeout's timer."""
    cfg = _cfg_edit(tmp_path, "sweagent.yaml", lambda d: d["agent"].update({field: value}))
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(cfg)))
    assert f"agent.{field}: Input should be less than or equal to 604800" in line


def test_more_eval_workers_than_open_files_is_one_line(tmp_path):
    import resource

    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "evals", "-p", "no:cacheprovider", "-q", "-m", "demo", "--models",
         "empty", "--runs-dir", str(tmp_path / "runs"), "--eval-workers", "5000"],
        cwd=ROOT, capture_output=True, text=True, timeout=180, preexec_fn=low_limit,
        env={**os.environ, "PYTEST_ADDOPTS": "", "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    line = _one_error_line(done)
    assert "--eval-workers 5000" in line and "256 files (ulimit -n)" in line and "at most 128" in line


def _finish_many(runs_dir: str, run_id: str, times: int, errors) -> None:
    from harness.run.finish import finish_run

    cfg = HarnessConfig(ROOT / "config")
    paths = RunPaths(Path(runs_dir), run_id)
    try:
        for _ in range(times):
            finish_run(paths, cfg, active_grids=frozenset({"demo"}), cpu_samples=[], exitstatus=0)
    except Exception as e:  # reported to the test, which fails on any
        errors.put(f"{type(e).__name__}: {e}")


def test_two_runs_finishing_at_once_share_runs_leaderboard(tmp_path):
    """Each finish rewrites runs/leaderboard.csv; two runs finishing together must both succeed, every time."""
    import multiprocessing

    from tests.test_records import make_record

    runs = tmp_path / "runs"
    for run_id in ("a", "b"):
        for attempt in (1, 2):
            write_record(RunPaths(runs, run_id), make_record(run_id=run_id, attempt=attempt))
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()
    workers = [ctx.Process(target=_finish_many, args=(str(runs), r, 40, errors)) for r in ("a", "b")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
    assert [w.exitcode for w in workers] == [0, 0]
    assert errors.empty(), errors.get()
    import csv

    with (runs / "leaderboard.csv").open() as f:
        assert sorted(row["run_id"] for row in csv.DictReader(f)) == ["a", "b"]


def test_a_rootfs_import_whose_importer_stops_reading_does_not_hang(tmp_path):
    """_base_from_debootstrap's `tar | <runtime> import -`: an importer that exits without reading (here
    /bin/true) must end in a one-line error, not a tar blocked forever on a pipe we still hold open."""
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "big").write_bytes(os.urandom(4_000_000))
    code = (
        "import sys; from pathlib import Path; from harness.errors import HarnessError\n"
        "from harness.infra.containers import Runtime, import_rootfs\n"
        "try:\n    import_rootfs(Runtime('/bin/true', None), Path(sys.argv[1]), 'x/y:z')\n"
        "except HarnessError as e:\n    print('error:', e)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(rootfs)], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.startswith("error: tar of") and "\n" not in done.stdout.strip(), (
        done.stdout + done.stderr
    )


@pytest.mark.parametrize(
    ("name", "edit", "where"),
    [
        ("sweagent.yaml", lambda d: d["budgets"].update(usd_per_run=float("inf")), "budgets.usd_per_run"),
        ("sweagent.yaml", lambda d: d["budgets"].update(usd_per_case=float("nan")), "budgets.usd_per_case"),
        (
            "model_catalog.yaml",
            lambda d: d["models"][0].update(price_in_per_mtok=float("inf"), price_out_per_mtok=1.0),
            "models.0.price_in_per_mtok",
        ),
    ],
    ids=["usd_per_run-inf", "usd_per_case-nan", "price-inf"],
)
def test_an_infinite_budget_or_price_is_one_line(tmp_path, name, edit, where):
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(_cfg_edit(tmp_path, name, edit))))
    assert where in line and "finite number" in line


def test_a_grid_named_like_a_pytest_marker_is_one_line(tmp_path):
    cfg = _cfg_edit(tmp_path, "sweagent.yaml", lambda d: d["grids"].update(skip=d["grids"]["demo"]))
    done = _evals(
        "-m", "skip", "--models", "empty", "--harness-config", str(cfg), "--runs-dir", str(tmp_path)
    )
    line = _one_error_line(done)
    assert "grid name 'skip' is a marker pytest acts on" in line


def test_a_record_named_for_another_case_is_not_counted_twice(tmp_path):
    assert _run_empty(tmp_path, run_id="dup").returncode == 0
    cases = tmp_path / "runs" / "dup" / "cases"
    first = sorted(cases.glob("*.json"))[0]
    (cases / "copied-by-hand.json").write_bytes(first.read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "harness", "leaderboard", str(tmp_path / "runs" / "dup")],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"unreadable record left in place (not counted): {cases / 'copied-by-hand.json'}" in done.stdout
    header, row = (tmp_path / "runs" / "dup" / "leaderboard.csv").read_text().splitlines()[:2]
    assert dict(zip(header.split(","), row.split(","), strict=False))["cases"] == "3"


@pytest.mark.parametrize("key", ["num_retries", "max_retries", "retry_policy", "fallbacks"])
def test_model_kwargs_that_retry_behind_the_quota_are_one_line(tmp_path, key):
    cfg = _cfg_edit(tmp_path, "model_catalog.yaml", lambda d: d["models"][0].update(model_kwargs={key: 3}))
    line = _one_error_line(_run_empty(tmp_path, "--harness-config", str(cfg)))
    assert f"{key} must not be in model_kwargs: the harness owns retries" in line


def test_model_spec_with_an_escaped_comma_in_a_value():
    model = parse_model_spec(r"id=local,litellm=openai/m,api_base=http://127.0.0.1:9/v1?a=1\,b=2")
    assert model.api_base == "http://127.0.0.1:9/v1?a=1,b=2"
    with pytest.raises(HarnessError, match="api_base= is given twice"):
        parse_model_spec("id=local,litellm=openai/m,api_base=http://a/v1,api_base=http://b/v1")
