"""A short `freshmesh demo` (2 stores, seconds): the summary shows a consistent chain."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration


def test_short_demo_summary_holds(tmp_path):
    report = tmp_path / "demo.json"
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL", "RAY_ADDRESS")}
    result = subprocess.run([sys.executable, "-m", "simulators.cli", "demo", "--stores", "2", "--duration", "12",
                             "--json", str(report)], env=env, capture_output=True, text=True, timeout=400)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    summary = json.loads(report.read_text())
    assert summary["invariant_violations"] == []
    assert summary["edge_cloud_mismatches"] == []
    assert summary["sales"] > 0 and summary["sales"] == summary["cloud_sales"]
    assert summary["flash_sale"]["oversold"] == 0 and summary["flash_sale"]["sold"] == summary["flash_sale"]["quantity"]
    assert summary["online_orders"] > 0
    assert summary["lag_ms"]["p99"] is not None and summary["lag_ms"]["p99"] < 10_000  # the mission's bar
