"""The demo itself, end to end (``bulkhead demo`` as a newcomer runs it): its report is checked,
not just its exit code — every lock credited with a journey, A liquidated partially then fully
with its collateral seized on both source chains, B bit-identical through the crash and then
released, C released, the chart written and the audit clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.timeout(420)]

USDC = 10**6


def test_demo_runs_the_whole_story_and_reports_it(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BULKHEAD_")},
           "BULKHEAD_HOME": str(tmp_path), "COLUMNS": "160"}
    proc = subprocess.run([sys.executable, "-m", "bulkhead", "demo"], env=env,
                          capture_output=True, text=True, timeout=400, check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "Every lock's journey" in proc.stdout and "Every position's fate" in proc.stdout
    report = json.loads((tmp_path / "demo" / "report.json").read_text())

    locks = report["locks"]
    assert sorted((j["position_label"], j["chain"]) for j in locks) == [
        ("A", "evm-a"), ("A", "solana"), ("B", "evm-a"), ("C", "solana")]
    for j in locks:
        stages = j["stages_s"]
        assert all(stages[s] is not None for s in ("seen", "finalized", "attested", "credited"))
        assert stages["seen"] <= stages["finalized"] <= stages["attested"] <= stages["credited"]
        # every unit of every lock went back: released to its owner or seized
        assert int(j["released"]) + int(j["seized"]) == int(j["amount"]) * USDC

    fates = {p["label"]: p for p in report["positions"]}
    a, b, c = fates["A"], fates["B"], fates["C"]
    assert [liq["full"] for liq in a["liquidations"]] == [False, True]
    assert int(a["liquidations"][0]["mark_e8"]) > int(a["liquidations"][1]["mark_e8"])
    assert a["seized"] == {"evm-a": str(200 * USDC), "solana": str(150 * USDC)}
    assert a["released"] == {} and int(a["shortfall_usd_e18"]) > 0  # the gap is recorded
    assert b["untouched_by_crash"] is True and b["liquidations"] == [] and b["closed"]
    assert int(b["released"]["evm-a"]) > 0 and c["released"] == {"solana": str(400 * USDC)}
    assert c["liquidations"] == [] and c["seized"] == {}

    chart = Path(report["chart"])
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    # the chart's data: A fell below maintenance (ratio < 1) while B never did
    assert min(r for _, r in report["series"]["A"] if r is not None) < 1_000_000
    assert min(r for _, r in report["series"]["B"] if r is not None) > 1_000_000
    # the volatility buffer, fed from the mark: ~0 while calm, at its cap before the crash
    buffer = report["buffer"]
    assert buffer["calm_ppm"] <= 1_000 and buffer["volatile_ticks"] >= 1
    assert buffer["at_crash_ppm"] == buffer["cap_ppm"] > 0
    assert max(b for _, b in buffer["series"]) == buffer["cap_ppm"]
    assert report["audit_clean"] is True
    assert report["elapsed_s"] < 300
