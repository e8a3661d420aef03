"""Grading one patch: the evaluation cache first, else the official evaluator in an evaluation slot.

Returns the CaseRecord fields of the verdict (outcome, class, message, timings, tests, integrity, cache).
A hit reuses the report of an earlier evaluation of the same patch on the same image and eval spec
(harness.infra.eval_cache) and takes no evaluation slot; `--no-eval-cache` grades afresh.
"""

from __future__ import annotations

import time
from functools import partial

from harness.config import FIXTURES_SLICE
from harness.infra.containers import LABEL_CASE, LABEL_RUN
from harness.infra.eval_cache import cache_key
from harness.infra.eval_server import evaluate_remote
from harness.infra.eval_slots import eval_slot
from harness.infra.evaluation import EvalResult, classify_evaluation, eval_log_dir, evaluate_patch
from harness.infra.modal import evaluate_patch_modal
from harness.outcomes import Outcome, OutcomeClass
from harness.run.context import RunContext
from harness.run.grid import Case


def grade_patch(ctx: RunContext, case: Case, row: dict, patch: str) -> dict:
    namespace = "localhost" if case.split == FIXTURES_SLICE else ctx.namespace
    ctx.runtime  # noqa: B018 - make sure DOCKER_HOST points at the runtime before swebench connects
    eval_run_id = evaluation_run_id(ctx, case)
    log_root = ctx.paths.case_artifacts(case.case_id) / "evaluation"
    log_dir = eval_log_dir(log_root, eval_run_id, case.model_id, row["instance_id"])
    spec_waits = ctx.spec_hash_wait_s
    key = _key(ctx, row, patch, namespace, case)
    cache: dict = {"eval_cache": "off" if ctx.eval_cache is None else "miss"}
    started = time.monotonic()
    hit = ctx.eval_cache.lookup(key, log_dir) if ctx.eval_cache is not None and key else None
    if hit is not None:
        ev = classify_evaluation(row["instance_id"], log_dir, time.monotonic() - started)
        ev.integrity = list(hit.meta.get("integrity", []))
        ev.test_exit_status = hit.meta.get("test_exit_status")
        waited = 0.0
        cache = {
            "eval_cache": "hit",
            "eval_cache_source": f"{hit.meta.get('run_id')}/{hit.meta.get('case_id')}",
        }
    else:
        target = ctx.cfg.agent.evaluation.cpu_target_percent
        with eval_slot(ctx.paths.slots, ctx.eval_workers, cpu_target=target) as waited:
            ev = _evaluator(ctx)(
                row,
                patch,
                model_id=case.model_id,
                eval_run_id=eval_run_id,
                namespace=namespace,
                log_root=log_root,
                timeout_s=ctx.cfg.agent.evaluation.timeout_s,
                labels={LABEL_RUN: ctx.paths.run_label, LABEL_CASE: case.case_id},
            )
        key = key or _key(ctx, row, patch, namespace, case)  # the image may have been pulled just now
        if ctx.eval_cache is not None and key and not ev.infra:
            meta = {"run_id": ctx.run_id, "case_id": case.case_id, "integrity": ev.integrity}
            ctx.eval_cache.store(key, ev.log_dir, {**meta, "test_exit_status": ev.test_exit_status})
    server_wait = ctx.spec_hash_wait_s - spec_waits + ev.server_wait_s  # the evaluation server's load
    return {**_verdict_fields(ctx, ev, waited), **cache, "server_start_wait_s": round(server_wait, 3)}


def evaluation_run_id(ctx: RunContext, case: Case) -> str:
    """swebench's run_id for a case's evaluation: it names the evaluation's container (sweb.eval.<instance>.<this>)
    and its log folder, so it carries the run's label (its folder), the model and the attempt."""
    return f"{ctx.paths.run_label}.{case.model_id}.a{case.attempt}"


def _evaluator(ctx: RunContext):
    """Modal (--eval-backend modal), the run's evaluation server, or this process (no server: calibrate, library use)."""
    if ctx.eval_backend == "modal":
        return evaluate_patch_modal
    if ctx.eval_server is not None:
        return partial(evaluate_remote, ctx.eval_server)
    return evaluate_patch


def _key(ctx: RunContext, row: dict, patch: str, namespace: str, case: Case) -> str | None:
    """The cache key, or None when caching is off or the image's digest is not known (not pulled yet)."""
    if ctx.eval_cache is None:
        return None
    from harness.infra.containers import instance_image_name

    digest = ctx.image_digest(instance_image_name(case.instance_id, namespace))
    spec = ctx.spec_hash(row) if digest else None
    return cache_key(row, patch, digest, ctx.versions.get("swebench", ""), spec) if spec else None


def _verdict_fields(ctx: RunContext, ev: EvalResult, waited: float) -> dict:
    out = {
        "outcome": Outcome.ERROR if ev.infra else (Outcome.RESOLVED if ev.resolved else Outcome.UNRESOLVED),
        "outcome_class": ev.outcome_class,
        "message": ev.message,
        "eval_queue_wait_s": round(waited, 3),
        "eval_wall_s": round(ev.wall_s, 3),
        "tests_status": ev.tests_status,
        "evaluator_report": ev.report,
        "log_dir": ev.log_dir,
    }
    if ev.infra:
        out["errors"] = [{"stage": "evaluation", "error": ev.message, "traceback": ""}]
        return out
    out.update(integrity=ev.integrity, test_exit_status=ev.test_exit_status)
    if ev.integrity and ctx.strict_integrity:
        verdict = "resolved" if ev.resolved else "unresolved"
        out.update(
            outcome=Outcome.UNRESOLVED,
            outcome_class=OutcomeClass.INTEGRITY_FLAGGED,
            message=f"--strict-integrity: {', '.join(ev.integrity)} (the evaluator said {verdict})",
        )
    return out
