"""Two runs of one run id in two runs dirs on one machine (shards that share a ledger are told to share one
--run-id; two checkouts can share a Docker host): each run's containers are its own. A run's start must not
remove the other's live containers as leftovers, and the same case's evaluations must not collide on
swebench's container name (sweb.eval.<instance>.<run id>...). Real runs through run_case and open_run, real
containers, the official evaluator.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from harness.config import HarnessConfig
from harness.demo.llm_server import Fault, ScriptedLLMServer
from harness.demo.scripts import FIXTURE_SCRIPTS
from harness.infra.containers import instance_image_name
from harness.results.records import RunPaths
from harness.run.case import run_case
from harness.run.context import RunContext
from harness.run.grid import Case
from harness.run.start import open_run
from tests.helpers import config_with_splits, labelled_containers

pytestmark = pytest.mark.containers
CALC = "fixtures__calc-1"


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer([FIXTURE_SCRIPTS[0]]) as server:
        yield server


@pytest.fixture(scope="module")
def cfg(fixture_rows, llm, tmp_path_factory) -> HarnessConfig:
    tmp = tmp_path_factory.mktemp("run-labels")
    cfg_dir = config_with_splits(tmp, {"fx": [fixture_rows[CALC]]})
    catalog = yaml.safe_load((cfg_dir / "model_catalog.yaml").read_text())
    catalog["models"].append(
        {"id": "sim", "kind": "litellm", "provider": "openai-compatible", "litellm_id": "openai/sim",
         "api_base": llm.url}
    )  # fmt: skip
    (cfg_dir / "model_catalog.yaml").write_text(yaml.safe_dump(catalog))
    return HarnessConfig(cfg_dir, root=tmp)


def _context(cfg: HarnessConfig, run_id: str, runs_dir: Path) -> RunContext:
    return RunContext(
        cfg,
        run_id,
        runs_dir,
        namespace="localhost",
        eval_workers=1,
        dataset_source="snapshot",
        eval_cache=False,
    )


def _case(model: str) -> Case:
    return Case(model, CALC, 1, "fx", ("demo",), (120,))


def test_a_runs_start_spares_the_live_containers_of_a_same_id_run_in_another_folder(
    cfg, llm, runtime, fixture_images, tmp_path
):
    run_id = f"twin-{uuid.uuid4().hex[:8]}"
    first = _context(cfg, run_id, tmp_path / "a" / "runs")
    case, done = _case("sim"), {}
    llm.add_faults(Fault("latency", delay_s=4))  # the agent's first request: its container lives meanwhile
    agent = threading.Thread(target=lambda: done.update(record=run_case(first, case)))
    agent.start()
    try:
        deadline = time.monotonic() + 60
        while not labelled_containers(runtime, case_id=case.case_id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert labelled_containers(runtime, case_id=case.case_id), "the first run's agent never started"
        _, notes, owner = open_run(cfg, RunPaths(tmp_path / "b" / "runs", run_id), resume=False, argv=["b"])
        owner.close()
        agent.join(180)
    finally:
        first.close()
    record = done["record"]
    assert notes == [], "the second run's start removed containers of the first"
    assert (record.outcome, record.outcome_class) == ("resolved", "resolved"), record.message
    assert labelled_containers(runtime, run_label=first.paths.run_label) == []


def test_the_same_case_in_two_same_id_runs_is_evaluated_under_two_container_names(
    cfg, runtime, fixture_images, tmp_path
):
    """The second run's evaluation runs while a container holds the name of the first's (as if the first were
    still evaluating): it must not need that name."""
    run_id = f"twin-{uuid.uuid4().hex[:8]}"
    first, second = (_context(cfg, run_id, tmp_path / side / "runs") for side in "ab")
    try:
        record = run_case(first, _case("gold"))
        assert record.outcome == "resolved", record.message
        # artifacts/<case>/evaluation/<swebench run id>/<model>/<instance>/run_instance.log
        eval_run_id = (first.paths.root / record.artifacts["run_instance"]).parents[2].name
        name = f"sweb.eval.{CALC}.{eval_run_id}"
        image = instance_image_name(CALC, "localhost")
        runtime.run("run", "-d", "--name", name, image, "sleep", "300", timeout=120)
        try:
            again = run_case(second, _case("gold"))
        finally:
            runtime.run("rm", "-f", "-t", "0", name, check=False, timeout=120)
    finally:
        first.close()
        second.close()
    assert (again.outcome, again.outcome_class) == ("resolved", "resolved"), again.message
