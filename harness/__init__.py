"""swebench-harness: run coding models through an agent on SWE-bench instances, score with the official evaluator.

Packages by role: `config` (schema and loading), `run` (the run lifecycle, grid, one case), `agents`
(the agent seam and its backends), `infra` (containers, evaluator, dataset, budget, secrets, providers),
`results` (records and everything derived from them), `demo` (bundled fixture instances and the
scripted LLM server), `plugin` (pytest glue). docs/architecture.md draws the data flow.
"""

from harness.errors import HarnessError

__version__ = "0.1.0"
__all__ = ["HarnessError", "__version__"]
