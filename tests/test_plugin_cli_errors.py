"""Bad input at the command line gets one line that says what to do, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests.helpers import ROOT, run_pytest


def _one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 4, (done.returncode, done.stdout[-1000:], done.stderr[-1000:])
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("ERROR:")]
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_i1_collects_8_instances_x_7_models_x_2_attempts_without_network_or_litellm():
    code = (
        "import sys, pytest\n"
        "rc = pytest.main(['evals', '-m', 'i1', '--collect-only', '-q', '-p', 'no:cacheprovider'])\n"
        "assert 'litellm' not in sys.modules, 'collection imported litellm'\n"
        "sys.exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "112/" in done.stdout.splitlines()[-1]
    narrowed = run_pytest("evals", "-m", "i1", "--collect-only", "-q", "-k", "sqlfluff")
    assert "28/" in narrowed.stdout.splitlines()[-1]
    assert all("sqlfluff" in line for line in narrowed.stdout.splitlines() if "::" in line)


def test_unknown_model_id():
    line = _one_error_line(run_pytest("evals", "-m", "demo", "--models", "gold,nope", "--collect-only"))
    assert "unknown model id 'nope'" in line


def test_attempts_below_one():
    assert "K must be at least 1" in _one_error_line(run_pytest("evals", "--attempts", "0", "--collect-only"))


def test_malformed_config_file(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    text = (cfg / "sweagent.yaml").read_text().replace("step_limit:", "step_limt:")
    (cfg / "sweagent.yaml").write_text(text)
    line = _one_error_line(run_pytest("evals", "--harness-config", str(cfg), "--collect-only"))
    assert "sweagent.yaml" in line and "step_limt" in line


def test_unknown_instance_id(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    text = (
        (cfg / "instances_i1.yaml")
        .read_text()
        .replace("sqlfluff__sqlfluff-1625", "sqlfluff__sqlfluff-99999", 1)
    )
    (cfg / "instances_i1.yaml").write_text(text)
    line = _one_error_line(run_pytest("evals", "--harness-config", str(cfg), "--collect-only"))
    assert "sqlfluff__sqlfluff-99999" in line


def test_no_container_runtime(tmp_path):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    line = _one_error_line(
        run_pytest(
            "evals",
            "-m",
            "demo",
            "--runs-dir",
            str(tmp_path / "runs"),
            env={"PATH": str(empty_path), "DOCKER_HOST": ""},
        )
    )
    assert "no container runtime" in line


def test_resume_of_a_missing_run(tmp_path):
    line = _one_error_line(run_pytest("evals", "-m", "demo", "--runs-dir", str(tmp_path), "--resume", "nope"))
    assert "--resume nope" in line


def test_unknown_mini_config(tmp_path):
    cfg = tmp_path / "config"
    shutil.copytree(ROOT / "config", cfg)
    text = (cfg / "sweagent.yaml").read_text()
    (cfg / "sweagent.yaml").write_text(text.replace("mini_config: swebench.yaml", "mini_config: nope.yaml"))
    line = _one_error_line(run_pytest("evals", "-m", "demo", "--harness-config", str(cfg), "--collect-only"))
    assert "agent.mini_config 'nope.yaml'" in line


def test_broken_mark_expression():
    line = _one_error_line(run_pytest("evals", "-m", "demo and (", "--collect-only"))
    assert "-m 'demo and (': not a mark expression" in line
