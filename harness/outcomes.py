"""The outcome vocabulary: what a case ended as (`Outcome`) and why (`OutcomeClass`), and the sets the
code asks about. Both are StrEnums, so records keep their plain strings on disk and in JUnit.

| outcome    | pytest  | classes                                                              |
|------------|---------|----------------------------------------------------------------------|
| resolved   | passed  | resolved                                                             |
| unresolved | failed  | MODEL_CLASSES other than resolved (the model's own result)           |
| error      | error   | INFRA_CLASSES (not the model's fault; --resume re-runs them)         |
| skipped    | skipped | SKIP_CLASSES (never started: no key, unavailable, budget, excluded)  |
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    ERROR = "error"
    SKIPPED = "skipped"


class OutcomeClass(StrEnum):
    # model outcomes: the evaluator's verdict, or why there was nothing to evaluate
    RESOLVED = "resolved"
    UNRESOLVED = "unresolved"
    EMPTY_PATCH = "empty-patch"
    MALFORMED_PATCH = "malformed-patch"
    PATCH_APPLY_FAILED = "patch-apply-failed"
    STEP_LIMIT = "step-limit"
    AGENT_TIMEOUT = "agent-timeout"
    FORMAT_ERRORS = "format-errors"
    COST_LIMIT = "cost-limit"
    CONTEXT_LIMIT = "context-limit"
    INTEGRITY_FLAGGED = "integrity-flagged"
    """--strict-integrity: the patch carries an integrity flag (harness.infra.integrity)."""
    # infrastructure errors
    PROVIDER_ERROR = "provider-error"
    """Provider retries exhausted (429/5xx/resets)."""
    LLM_TIMEOUT = "llm-timeout"
    """Provider retries exhausted and the last failure was a request timeout."""
    AGENT_CRASH = "agent-crash"
    CONTAINER_ERROR = "container-error"
    EVALUATOR_ERROR = "evaluator-error"
    EVAL_TIMEOUT = "eval-timeout"
    """The official evaluator's test run passed evaluation.timeout_s."""
    CASE_TIMEOUT = "case-timeout"
    """The whole case passed agent.case_timeout_s (pytest-timeout)."""
    # skips
    UNAVAILABLE = "unavailable"
    BUDGET = "budget"
    NO_CREDENTIALS = "no-credentials"
    EXCLUDED = "excluded"
    NO_PREDICTION = "no-prediction"
    """--predictions: the file has no patch for this instance and attempt."""


C = OutcomeClass
COMPLETED: frozenset[Outcome] = frozenset({Outcome.RESOLVED, Outcome.UNRESOLVED})
"""Outcomes with a model result: what rates, pairs and --resume count as finished."""
MODEL_CLASSES: frozenset[OutcomeClass] = frozenset(
    {
        C.RESOLVED,
        C.UNRESOLVED,
        C.EMPTY_PATCH,
        C.MALFORMED_PATCH,
        C.PATCH_APPLY_FAILED,
        C.STEP_LIMIT,
        C.AGENT_TIMEOUT,
        C.FORMAT_ERRORS,
        C.COST_LIMIT,
        C.CONTEXT_LIMIT,
        C.INTEGRITY_FLAGGED,
    }
)
INFRA_CLASSES: frozenset[OutcomeClass] = frozenset(
    {
        C.PROVIDER_ERROR,
        C.LLM_TIMEOUT,
        C.AGENT_CRASH,
        C.CONTAINER_ERROR,
        C.EVALUATOR_ERROR,
        C.EVAL_TIMEOUT,
        C.CASE_TIMEOUT,
    }
)
SKIP_CLASSES: frozenset[OutcomeClass] = frozenset(
    {C.UNAVAILABLE, C.BUDGET, C.NO_CREDENTIALS, C.EXCLUDED, C.NO_PREDICTION}
)


def outcome_of(outcome_class: str) -> Outcome:
    """The outcome a class belongs to (resolved is its own; any other model class is unresolved)."""
    if outcome_class == C.RESOLVED:
        return Outcome.RESOLVED
    if outcome_class in SKIP_CLASSES:
        return Outcome.SKIPPED
    if outcome_class in INFRA_CLASSES:
        return Outcome.ERROR
    return Outcome.UNRESOLVED
