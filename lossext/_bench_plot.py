"""`python -m lossext.bench --plot FILE.png`: the bench's rows as one figure per run, a row of two
panels per device: lossext's speedup over torch eager and torch.compile for each case (forward and
forward+backward, log scale, a line at 1x), and the bandwidth fraction of forward+backward
(fewest bytes moved / time, over the measured copy bandwidth). matplotlib is an optional extra
(`pip install lossext[plot]`), imported only here."""
from __future__ import annotations

from typing import Dict, List

SERIES = [  # (numerator: torch's time, label); lossext's time is the denominator
    ("eager_f", "ours_f", "forward vs eager"),
    ("comp_f", "ours_f", "forward vs compile"),
    ("eager_fb", "ours_fb", "fwd+bwd vs eager"),
    ("comp_fb", "ours_fb", "fwd+bwd vs compile"),
]


def speedups(row: Dict) -> List[float]:
    """torch's time over lossext's for each series (NaN where not measured)."""
    out = []
    for theirs, ours, _ in SERIES:
        t, o = row.get(theirs), row.get(ours)
        out.append(t / o if t and o else float("nan"))
    return out


def plot(rows: List[Dict], path: str, title: str = "") -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib import ticker
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise SystemExit("lossext.bench --plot needs matplotlib: pip install matplotlib (or lossext[plot])") from e
    devices = list(dict.fromkeys(r["device"] for r in rows))
    n = max((sum(r["device"] == d for r in rows) for d in devices), default=1)
    fig, axes = plt.subplots(len(devices), 2, figsize=(14, 1.2 + 0.32 * n * len(devices)), squeeze=False,
                             gridspec_kw=dict(width_ratios=[3, 1]))
    for (ax, bx), dev in zip(axes, devices):
        rs = [r for r in rows if r["device"] == dev][::-1]  # first case at the top
        labels = [f"{r['loss']} {r['case']} {r['dtype']}" for r in rs]
        h = 0.8 / len(SERIES)
        for k, (_, _, name) in enumerate(SERIES):
            ys = [i + (k - (len(SERIES) - 1) / 2) * h for i in range(len(rs))]
            ax.barh(ys, [speedups(r)[k] for r in rs], height=h, label=name)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_yticks(range(len(rs)), labels, fontsize=7)
        ax.set_xlabel("speedup of lossext (torch's time / lossext's, log scale)")
        ax.set_title(f"{dev}: speedup")
        ax.grid(axis="x", which="both", alpha=0.3)
        bx.barh(range(len(rs)), [r["pct_copy"] for r in rs], color="gray")
        bx.set_yticks(range(len(rs)), [""] * len(rs))
        bx.set_xlabel("fwd+bwd, % of copy bandwidth")
        bx.set_title(f"{dev}: bandwidth")
        bx.grid(axis="x", alpha=0.3)
    handles, names = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=len(SERIES), fontsize=8, bbox_to_anchor=(0.5, 0.995))
    if title:
        fig.text(0.01, 0.995, title, fontsize=8, va="top")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    fig.savefig(path, dpi=110)
    plt.close(fig)
