"""Loads the swebench-harness pytest plugin for both evals/ and tests/."""

pytest_plugins = ["harness.plugin"]
