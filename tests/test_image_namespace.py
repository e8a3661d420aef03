"""`--image-namespace NS` reaches both the agent's container and the evaluator's, end to end.

A "mirror" of the calc fixture image is built under a namespace of its own and made recognisable: it carries
/harness-mirror (which the agent `cat`s) and a /testbed/conftest.py whose pytest header line shows in the
evaluator's test output. A real `pytest evals` run over a locked split (not the bundled fixtures, which always
use `localhost`) with `--image-namespace` then has to have run both stages in that image.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.demo.llm_server import Script, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.infra.containers import fixture_image_name, instance_image_name
from tests.helpers import config_with_splits, run_evals

pytestmark = pytest.mark.containers
CALC = "fixtures__calc-1"
MARK = "served-from-the-mirror-image"


@pytest.fixture(scope="module")
def mirror(runtime, fixture_images) -> Iterator[str]:
    """A namespace holding a recognisable copy of the calc image; removed afterwards."""
    namespace = f"localhost/harness-mirror-{uuid.uuid4().hex[:8]}"
    tag = instance_image_name(CALC, namespace)
    with tempfile.TemporaryDirectory(prefix="harness-mirror-") as tmp:
        ctx = Path(tmp)
        (ctx / "mirror").write_text(MARK + "\n")
        (ctx / "conftest.py").write_text(f"def pytest_report_header(config):\n    return {MARK!r}\n")
        (ctx / "Dockerfile").write_text(
            f"FROM {fixture_image_name(CALC)}\nCOPY mirror /harness-mirror\nCOPY conftest.py /testbed/conftest.py\n"
        )
        runtime.run("build", "-t", tag, str(ctx), timeout=300)
    try:
        yield namespace
    finally:
        runtime.run("rmi", "-f", tag, check=False, timeout=120)


def _only_i0(agent: dict) -> None:
    # only i0: the demo grid holds the same instance id in the fixtures split, which always uses localhost
    agent["grids"] = {"i0": agent["grids"]["i0"]}


def _config(tmp: Path, row: dict) -> Path:
    """Grid i0 only: the calc row as a locked `dev` split (so the namespace applies)."""
    cfg = config_with_splits(tmp, {"dev": [row]}, agent=_only_i0)
    slice_ = {
        "slice": "i0",
        "description": "the calc fixture as a locked split",
        "rule": "one instance",
        "instances": [{"id": CALC, "split": "dev", "reason": "the namespace applies to locked splits"}],
    }
    (cfg / "instances_i0.yaml").write_text(yaml.safe_dump(slice_))
    return cfg


def test_image_namespace_reaches_the_agent_and_the_evaluator(mirror, fixture_images, tmp_path):
    cfg = _config(tmp_path, fixture_images[CALC])
    script = Script(match=FIXTURE_SCRIPTS[0].match, steps=["cat /harness-mirror", *FIXTURE_SCRIPTS[0].steps])
    with ScriptedLLMServer([script]) as server:
        done = run_evals(
            "-m", "i0", "--models", "gold,sim", "--harness-config", str(cfg), "--dataset-source", "snapshot",
            "--image-namespace", mirror, "--check-models", "no", "--no-gates", "--runs-dir", str(tmp_path / "runs"),
            "--run-id", "mirror", "--model-spec", f"id=sim,litellm=openai/sim,api_base={server.url}",
        )  # fmt: skip
        second = json.dumps(server.requests[1]["body"]["messages"]) if len(server.requests) > 1 else ""
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    run = tmp_path / "runs" / "mirror"
    records = {p.stem: json.loads(p.read_text()) for p in (run / "cases").glob("*.json")}
    assert sorted(records) == [f"gold-{CALC}-a1", f"sim-{CALC}-a1"]
    assert MARK in second, "the agent's first command did not run in the mirror image"
    for record in records.values():
        assert record["outcome"] == "resolved", record["message"]
        assert record["dataset"]["image"] == instance_image_name(CALC, mirror)
        output = (run / record["artifacts"]["test_output"]).read_text()
        assert MARK in output, f"{record['case_id']}: the evaluator did not use the mirror image"


def test_the_mirror_is_not_the_default_image(runtime, mirror):
    """Control: the bundled image has neither mark, so only the mirror can have put them there."""
    done = runtime.run(
        "run",
        "--rm",
        fixture_image_name(CALC),
        "sh",
        "-c",
        "ls /harness-mirror /testbed/conftest.py",
        check=False,
    )
    assert done.returncode != 0 and MARK not in done.stdout
