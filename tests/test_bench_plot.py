"""lossext.bench --plot: the speedups it draws are torch's time over lossext's, and it writes an
image (skipped without matplotlib, an optional extra)."""
import math

import pytest

from lossext._bench_plot import SERIES, plot, speedups

ROW = dict(device="cpu", loss="mse_loss", case="64", dtype="float32", ours_f=1.0, eager_f=2.0, comp_f=0.5,
           ours_fb=2.0, eager_fb=3.0, pct_copy=40.0)


def test_speedups():
    s = speedups(ROW)
    assert [name for *_, name in SERIES] == ["forward vs eager", "forward vs compile", "fwd+bwd vs eager",
                                             "fwd+bwd vs compile"]
    assert s[:3] == [2.0, 0.5, 1.5] and math.isnan(s[3])  # no compile column: not drawn


def test_plot_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [ROW, dict(ROW, device="cuda", case="256M"), dict(ROW, loss="cross_entropy", comp_fb=4.0)]
    out = tmp_path / "bench.png"
    plot(rows, str(out), "title")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
