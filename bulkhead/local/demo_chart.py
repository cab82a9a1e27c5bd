"""The demo's PNG chart: each position's margin ratio E / MM over time, with the liquidation line
(ratio 1), the market's volatility buffer (right axis) and the demo's events marked. Writes a
file; draws off screen (Agg backend)."""

from __future__ import annotations

from pathlib import Path

from bulkhead.local.demo_report import PPM, RatioSeries

__all__ = ["write_ratio_chart"]


def write_ratio_chart(series: RatioSeries, path: Path, *, full_ratio_ppm: int) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.8), dpi=110)
    try:
        for label, points in sorted(series.points.items()):
            xs = [t for t, r in points if r is not None]
            ys = [r / PPM for _, r in points if r is not None]  # a ratio, drawn: not an amount
            if xs:
                ax.plot(xs, ys, marker=".", linewidth=1.6, label=f"position {label}")
        ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=1,
                   label="maintenance (E = MM): liquidatable below")
        ax.axhline(full_ratio_ppm / PPM, color="tab:purple", linestyle=":", linewidth=1,
                   label="full liquidation below")
        for i, (t, what) in enumerate(series.marks):
            ax.axvline(t, color="grey", linewidth=0.6)
            ax.annotate(what, (t, 0.0), xycoords=("data", "axes fraction"), rotation=90,
                        fontsize=7, va="bottom", ha="right", xytext=(-2, 4 + 60 * (i % 3)),
                        textcoords="offset points")
        ax.set_xlabel("seconds since the positions opened")
        ax.set_ylabel("margin ratio E / MM")
        ax.set_yscale("symlog", linthresh=1.0, linscale=2.0)
        ticks = [-1, 0, 0.5, 1, 2, 5, 10, 20]
        ax.set_yticks(ticks, [str(t) for t in ticks])
        ax.set_title("Bulkhead demo: isolated positions through a price crash")
        if series.buffer:
            right = ax.twinx()
            right.step([t for t, _ in series.buffer], [b / 10_000 for _, b in series.buffer],
                       where="post", color="tab:olive", linewidth=1.2, alpha=0.8)
            right.set_ylabel("volatility buffer (% added to MM)", color="tab:olive")
            right.set_ylim(bottom=0)
            ax.plot([], [], color="tab:olive", label="volatility buffer (right axis)")
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
