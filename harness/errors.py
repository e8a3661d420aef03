"""Every exception the harness raises on purpose, in one place.

Two families:
- `HarnessError`: the user can fix it (bad config, unknown id, missing runtime). Its message is one line
  that says what to do; the CLI and the pytest plugin print it without a traceback.
- `CaseStopped`: one case ended for a reason that is not the model's (a budget, a missing model, a
  provider that kept failing, broken infrastructure). Each subclass carries the outcome class the
  case is recorded with, so callers use `isinstance` and `exc.outcome_class`, never class-name strings.
"""

from __future__ import annotations

from harness.outcomes import OutcomeClass


def one_line(text: object, limit: int | None = 400) -> str:
    """`text` with every run of whitespace as one space, cut at `limit` characters: fit for a one-line message."""
    flat = " ".join(str(text).split())
    return flat if limit is None else flat[:limit]


class HarnessError(Exception):
    """An error the user can fix; the message is one line that says what to do."""


class CaseStopped(Exception):
    """A case stopped for a reason that is not the model's; `outcome_class` says which."""

    outcome_class: OutcomeClass = OutcomeClass.AGENT_CRASH


class BudgetExhausted(CaseStopped):
    """A new LLM call would exceed a budget; `scope` says which one. The case is skipped as `budget`."""

    outcome_class = OutcomeClass.BUDGET

    def __init__(self, scope: str, message: str) -> None:
        super().__init__(message)
        self.scope = scope  # "calls-per-day:<provider>", "usd-per-run" or "usd-per-case"


class ModelUnavailable(CaseStopped):
    """The provider says the model does not exist (404): the case is skipped as `unavailable`."""

    outcome_class = OutcomeClass.UNAVAILABLE


class ProviderRetriesExhausted(CaseStopped):
    """Retryable failures (429, 5xx, timeouts, resets) outlasted the retry policy: an infrastructure error.

    `llm-timeout` when the last failure was a request timeout, else `provider-error`.
    """

    outcome_class = OutcomeClass.PROVIDER_ERROR

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        if timed_out:
            self.outcome_class = OutcomeClass.LLM_TIMEOUT


class CaseInfraError(CaseStopped):
    """The case failed for a reason that is not the model's: shown as a pytest error, re-run by --resume."""


class SweAgentOutputError(ValueError):
    """A SWE-agent output file that cannot be read; the message is one line naming the file."""
