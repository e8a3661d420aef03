"""The run's CPU sampler: the machine's samples and, beside them, the harness's own process tree."""

from __future__ import annotations

import subprocess
import sys
import time

from harness.run.manifest import CpuSampler


def test_sampler_measures_the_harness_process_tree_beside_the_machine():
    sampler = CpuSampler(interval_s=0.2)
    sampler.start()
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass"]
    )
    busy.wait()
    time.sleep(0.3)
    machine = sampler.stop()
    assert machine is sampler.samples and len(machine) >= 5
    assert len(sampler.harness_samples) == len(machine)
    assert all(0.0 <= s <= 100.0 for s in sampler.harness_samples)
    assert max(sampler.harness_samples) > 5.0  # the busy child is part of the harness's tree
    assert max(sampler.harness_samples) <= max(machine) + 15.0  # a share of the machine, same 0-100 scale
