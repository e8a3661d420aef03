"""The official swebench 4.1.0 evaluator, through the real container runtime, on the fixture images."""

from __future__ import annotations

import pytest

from harness.infra.evaluation import evaluate_patch

pytestmark = pytest.mark.containers

NOT_A_FIX = "\n".join(
    [
        "diff --git a/calc/stats.py b/calc/stats.py",
        "--- a/calc/stats.py",
        "+++ b/calc/stats.py",
        "@@ -1,4 +1,4 @@",
        '-"""Small statistics helpers."""',
        '+"""Small statistics helpers (edited)."""',
        " ",
        " ",
        " def mean(values):",
        "",
    ]
)

DOES_NOT_APPLY = """diff --git a/calc/missing.py b/calc/missing.py
--- a/calc/missing.py
+++ b/calc/missing.py
@@ -1 +1 @@
-old
+new
"""


def _evaluate(rows, tmp_path, instance_id, patch, model="m"):
    return evaluate_patch(
        rows[instance_id],
        patch,
        model_id=model,
        eval_run_id=f"t-{model}",
        namespace="localhost",
        log_root=tmp_path / "eval",
        timeout_s=300,
    )


def test_gold_patches_resolve_every_fixture(fixture_images, tmp_path):
    for instance_id, row in fixture_images.items():
        result = _evaluate(fixture_images, tmp_path, instance_id, row["patch"], model="gold")
        assert result.outcome_class == "resolved", (instance_id, result.message)
        assert result.resolved and not result.infra
        status = result.tests_status
        assert status["FAIL_TO_PASS"]["failure"] == []
        assert (result.log_dir / "test_output.txt").is_file()


def test_a_patch_that_does_not_fix_is_unresolved_and_names_the_failing_test(fixture_images, tmp_path):
    result = _evaluate(fixture_images, tmp_path, "fixtures__calc-1", NOT_A_FIX)
    assert result.outcome_class == "unresolved"
    assert not result.infra
    assert "tests/test_stats.py::test_mean_empty_raises" in result.message
    assert result.tests_status["PASS_TO_PASS"]["failure"] == []


def test_a_patch_that_does_not_apply_is_a_model_outcome(fixture_images, tmp_path):
    result = _evaluate(fixture_images, tmp_path, "fixtures__calc-1", DOES_NOT_APPLY)
    assert result.outcome_class == "patch-apply-failed"
    assert not result.infra and not result.resolved


def test_a_missing_image_is_an_infrastructure_error(fixture_images, tmp_path):
    row = dict(fixture_images["fixtures__calc-1"])
    result = evaluate_patch(
        row,
        row["patch"],
        model_id="m",
        eval_run_id="t-missing",
        namespace="localhost/nonexistent-ns",
        log_root=tmp_path / "eval",
        timeout_s=60,
    )
    assert result.infra
    assert result.outcome_class == "evaluator-error"


def test_the_evaluator_learns_the_api_version_from_ping_not_version(
    fixture_images, runtime, tmp_path, monkeypatch
):
    """podman answers GET /version in ~0.6 s of CPU (it asks the package manager for its components); the
    docker SDK asks it once per client, so once per evaluation. The evaluator reads /_ping's Api-Version."""
    from tests.helpers import RecordingDockerProxy

    upstream = runtime.docker_host or "unix:///var/run/docker.sock"
    if not upstream.startswith("unix://"):
        pytest.skip(f"the Docker API is not a Unix socket here ({upstream})")
    with RecordingDockerProxy(upstream, tmp_path) as proxy:
        monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
        row = fixture_images["fixtures__textkit-2"]
        result = _evaluate(fixture_images, tmp_path, "fixtures__textkit-2", row["patch"])
    assert result.outcome_class == "resolved", result.message
    assert any(r.endswith("/_ping") for r in proxy.requests), proxy.requests
    assert not [r for r in proxy.requests if r.endswith("/version")], proxy.requests
    assert any("/containers/create" in r for r in proxy.requests), (
        proxy.requests
    )  # the proxy saw the evaluation


def test_the_evaluation_container_is_removed_with_force_not_stopped_with_a_grace_period(
    fixture_images, runtime, tmp_path, monkeypatch
):
    """swebench's evaluation containers run `tail -f /dev/null` as PID 1, which ignores SIGTERM: on an image
    without a STOPSIGNAL (every pulled SWE-bench image) swebench's `stop(timeout=15)` after the verdict waits
    15 s before it kills. Here the calc image is copied with STOPSIGNAL SIGTERM (the fixture images say
    SIGKILL) under a namespace of its own; the evaluator must go straight to the forced removal."""
    import uuid
    from pathlib import Path

    from harness.infra.containers import LABEL_RUN, fixture_image_name, instance_image_name
    from tests.helpers import RecordingDockerProxy, labelled_containers

    upstream = runtime.docker_host or "unix:///var/run/docker.sock"
    if not upstream.startswith("unix://"):
        pytest.skip(f"the Docker API is not a Unix socket here ({upstream})")
    namespace = f"localhost/harness-sigterm-{uuid.uuid4().hex[:8]}"
    tag = instance_image_name("fixtures__calc-1", namespace)
    build = tmp_path / "image"
    build.mkdir()
    (build / "Dockerfile").write_text(f"FROM {fixture_image_name('fixtures__calc-1')}\nSTOPSIGNAL SIGTERM\n")
    runtime.run("build", "-t", tag, str(build), timeout=300)
    label = f"sigterm-{uuid.uuid4().hex[:8]}"
    try:
        with RecordingDockerProxy(upstream, tmp_path) as proxy:
            monkeypatch.setenv("DOCKER_HOST", f"unix://{proxy.path}")
            row = fixture_images["fixtures__calc-1"]
            result = evaluate_patch(
                row,
                row["patch"],
                model_id="m",
                eval_run_id="t-sigterm",
                namespace=namespace,
                log_root=Path(tmp_path / "eval"),
                timeout_s=300,
                labels={LABEL_RUN: label},
            )
        monkeypatch.undo()
        assert result.outcome_class == "resolved", result.message
        assert not [r for r in proxy.requests if r.startswith("POST") and r.split("?")[0].endswith("/stop")]
        assert [r for r in proxy.requests if r.startswith("DELETE /") and "force=" in r], proxy.requests
        assert labelled_containers(runtime, run_label=label) == []
        log = (result.log_dir / "run_instance.log").read_text()
        assert "Container sweb.eval.fixtures__calc-1.t-sigterm removed." in log
        # the 15 s grace period would be the bulk of it (a fixture evaluation takes 1-3 s)
        assert result.wall_s < 12, result.wall_s
    finally:
        runtime.run("rmi", "-f", tag, check=False, timeout=120)
