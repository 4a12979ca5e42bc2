"""The load suites' CPU meter (loadtest/cost.py): a process's CPU time is charged to its component."""
from __future__ import annotations

import subprocess
import sys
import time

from loadtest.cost import CpuMeter, ms_per_unit


def test_a_busy_process_is_charged_to_its_role_and_an_idle_one_is_not():
    burn = "import time\nend = time.process_time() + 0.4\nwhile time.process_time() < end: pass\ntime.sleep(30)\n"
    busy = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)\n" + burn])
    idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    try:
        meter = CpuMeter({busy.pid: "edge", idle.pid: "cloud"}).start()
        time.sleep(1.2)  # it burns 0.4 s, then sleeps
        meter.sample()
        busy.kill()  # ended inside the interval: charged up to its last sample
        busy.wait()
        cpu = meter.stop()
    finally:
        for p in (busy, idle):
            p.kill()
            p.wait()
    assert cpu["cpu_s"].get("edge", 0) >= 0.3
    assert cpu["cpu_s"].get("cloud", 0) < 0.1
    assert cpu["busy_s"] >= cpu["cpu_s"]["edge"] * 0.9
    per = ms_per_unit(cpu, 100)
    assert per["edge"] == round(cpu["cpu_s"]["edge"] * 10, 4) and per["total"] >= per["edge"]
