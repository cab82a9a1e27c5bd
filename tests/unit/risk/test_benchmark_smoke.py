"""The risk screen benchmark runs end to end (small) and its sample check finds no miss."""

from benchmarks.risk_screen import main


def test_risk_screen_benchmark_small() -> None:
    result = main(positions=5_000, markets=5, runs=2, sample=5_000)
    assert result["benchmark"] == "risk_screen" and result["threads"] == 1
    assert result["sample_check"]["missed"] == 0
    assert result["sample_check"]["exact_liquidatable"] > 0
    assert result["screen_ms_median"] > 0 and result["speedup_vs_python_loop"] > 0
