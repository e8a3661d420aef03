"""`--predictions ID=PATH`: a model whose patches come from a SWE-bench predictions file, not an agent.

Runs made elsewhere (SWE-agent, OpenHands, any harness) are evaluated, recorded, ranked and gated like
every other model. The file is JSON Lines (one object per line) or a JSON list/object, as the official
`run_evaluation` accepts: `instance_id`, `model_patch` (null = no patch) and an optional `attempt`
(default 1). An instance and attempt the file lacks is skipped as `no-prediction`.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from harness.agents import AgentResult, AgentTask
from harness.config.schema import ModelEntry
from harness.errors import HarnessError
from harness.outcomes import OutcomeClass

SPEC = re.compile(r"^([a-z0-9][a-z0-9._-]*)=(.+)$")


def parse_predictions_option(option: str) -> ModelEntry:
    """`ID=PATH` -> a catalog entry of kind predictions (the file is read and checked here)."""
    match = SPEC.match(option.strip())
    if not match:
        raise HarnessError(
            f"--predictions {option!r}: use ID=PATH, ID in lower-case letters, digits, '.', '_', '-'"
        )
    model_id, path = match.group(1), Path(match.group(2)).expanduser().resolve()
    load_predictions(str(path), f"--predictions {model_id}={match.group(2)}")
    return ModelEntry(
        id=model_id,
        kind="predictions",
        predictions_path=str(path),
        description=f"patches from {path.name} (--predictions)",
    )


def _entries(text: str, where: str) -> list[tuple[str, object]]:
    """(location, object) for a JSON list/object file, else for each non-blank line of JSON Lines."""
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise HarnessError(f"{where}: not valid JSON ({e}); fix the file") from None
        return [(f"item {i + 1}", item) for i, item in enumerate(data)]
    if stripped.startswith("{") and "\n{" not in stripped.rstrip():
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
            return [(f"key {k!r}", v) for k, v in data.items()]
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"line {lineno}", json.loads(line)))
        except ValueError as e:
            raise HarnessError(f"{where}: line {lineno} is not JSON ({e.msg}); one object per line") from None
    return out


@lru_cache(maxsize=16)
def load_predictions(path: str, where: str = "") -> dict[tuple[str, int], str]:
    """(instance_id, attempt) -> patch; any problem is one HarnessError line naming the line."""
    where = where or f"predictions file {path}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise HarnessError(
            f"{where}: cannot read ({getattr(e, 'strerror', None) or e}); check the path"
        ) from None
    found: dict[tuple[str, int], str] = {}
    for loc, item in _entries(text, where):
        if not isinstance(item, dict) or not isinstance(item.get("instance_id"), str):
            raise HarnessError(f"{where}: {loc} has no string instance_id; each prediction needs one")
        patch = item.get("model_patch")
        if patch is not None and not isinstance(patch, str):
            raise HarnessError(f"{where}: {loc}: model_patch must be a string or null")
        attempt = item.get("attempt", 1)
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1:
            raise HarnessError(f"{where}: {loc}: attempt must be an integer >= 1")
        key = (item["instance_id"], attempt)
        if key in found:
            raise HarnessError(f"{where}: {loc} repeats {key[0]} attempt {attempt}; keep one prediction each")
        found[key] = patch or ""
    if not found:
        raise HarnessError(f"{where}: no predictions in the file")
    return found


class PredictionsRunner:
    name = "predictions"

    def run(self, task: AgentTask) -> AgentResult:
        path = task.model.predictions_path or ""
        patches = load_predictions(path)
        key = (task.row["instance_id"], task.attempt)
        if key not in patches:
            return AgentResult(
                patch="",
                exit_status="NoPrediction",
                infra_class=OutcomeClass.NO_PREDICTION,
                infra_error=f"{Path(path).name} has no prediction for {key[0]} attempt {key[1]}",
            )
        return AgentResult(patch=patches[key], exit_status="Submitted")
