"""The eval: one test, parametrized over model x instance x attempt by the harness plugin.

`pytest evals -m demo` runs the bundled fixture instances; `-m i0/i1/i3` the SWE-bench Lite slices.
resolved -> passed; any other model outcome -> failed (the message says which tests failed);
infrastructure error -> error; budget/unavailable -> skipped.
"""

import pytest


def test_swebench(case, case_record):
    if case_record.outcome != "resolved":
        pytest.fail(f"{case_record.outcome_class}: {case_record.message}", pytrace=False)
