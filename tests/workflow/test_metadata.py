"""The compiler's metadata conversion (rounded floats, NaN left out, images as inline PNG) and
the per-phase execution profile (wall/CPU time, peak RSS)."""

from __future__ import annotations

import base64
import io
import math
import re

import dagster as dg
import numpy as np
import pandas as pd

from admf_assets.engine import charts
from admf_assets.phases.kind import Image
from admf_assets.workflow.compiler import _undefined, round_sig, to_metadata
from admf_assets.workflow.profile import PhaseProfile


def test_floats_are_rounded_to_six_significant_digits_and_nan_is_left_out():
    assert to_metadata(0.123456789).value == 0.123457
    assert to_metadata(np.float64(-1234567.891)).value == -1234570.0
    assert to_metadata(3.0).value == 3.0
    assert to_metadata(1e-12 / 3).value == 3.33333e-13
    assert to_metadata(float("nan")) is None
    assert to_metadata(np.float32("nan")) is None
    inf = to_metadata(float("inf"))
    assert isinstance(inf, dg.TextMetadataValue) and inf.value == "inf"
    assert to_metadata(7).value == 7 and to_metadata(True).value is True
    js = to_metadata({"a": 0.1234567891, "b": [float("nan"), 2.0, np.float64(1 / 3)], "c": "x"}).value
    assert js == {"a": 0.123457, "b": [None, 2.0, 0.333333], "c": "x"}
    assert round_sig(0.0) == 0.0 and math.isinf(round_sig(float("inf")))


def test_undefined_metrics_are_named_once():
    assert _undefined({"sharpe_ratio": 1.2, "n": 3}) is None
    text = _undefined({"sharpe_ratio": 1.2, "turnover": float("nan"), "exposure": np.nan})
    assert text.startswith("turnover, exposure: not defined")


def test_an_image_becomes_markdown_with_an_inline_png():
    chart = charts.line_chart({"a": pd.Series([1.0, 1.1, 1.05])}, "Equity")
    for img in (Image(chart, alt="equity [1]"), Image(chart.png()), Image(chart.figure)):
        md = to_metadata(img)
        assert isinstance(md, dg.MarkdownMetadataValue)
        m = re.fullmatch(r"!\[([^\]]*)\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", md.value)
        assert m, md.value[:80]
        assert "[" not in m.group(1)
        png = base64.b64decode(m.group(2))
        from PIL import Image as PILImage

        PILImage.open(io.BytesIO(png)).verify()


def test_phase_profile_measures_time_and_peak_memory():
    with PhaseProfile() as prof:
        block = np.ones(80 * 2**20 // 8)  # 80 MB, written: resident
        block.sum()
    del block
    assert prof.seconds > 0 and prof.cpu_seconds >= 0
    assert prof.measured.startswith("rss sampled")  # Linux: /proc/self/statm
    assert prof.rss_increase_mb >= 70, prof.rss_increase_mb
    assert prof.peak_rss_mb >= prof.start_rss_mb + 70
    meta = prof.metadata()
    assert set(meta) == {"compute_seconds", "cpu_seconds", "peak_rss_mb", "rss_increase_mb", "memory_measured"}
