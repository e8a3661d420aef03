"""swebench-harness: run coding models through an agent on SWE-bench instances, score with the official evaluator."""

__version__ = "0.1.0"


class HarnessError(Exception):
    """An error the user can fix (bad config, unknown id, missing runtime).

    Its message is one line that says what to do; the CLI and the pytest plugin print it without a traceback.
    """
