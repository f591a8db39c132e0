"""Speed of the Scale-invariance page's region measures (toy_problems.scale_invariance), side by side.

Per slider move on ρ the page needs the five region measures of ten networks Aw (the nine scales of
the ratio plot and the slider's a).  Prints the median over ``--moves`` values of ρ, taking turns:
  * batched: ``measures_over_scales`` on the ten networks, one ascent of a ten-member model
    (asam_core.sharpness.member_sharpness), as the page does;
  * one at a time: ``measures`` on each network in turn (the earlier page);
and their ratio, with the machine's load average before and after.

Usage: python -m benchmarks.scale_invariance [--moves 7]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from toy_problems.scale_invariance import (
    REGION_MEASURES,
    MeasureConfig,
    measures,
    measures_over_scales,
    reference_config,
    rescale_layer,
    train_reference,
)
from toy_problems.threads import torch_threads

SCALES = tuple(np.logspace(-1.0, 1.0, 9).tolist()) + (2.0,)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moves", type=int, default=7)
    moves = parser.parse_args().moves
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    ref = train_reference(reference_config("moons", 0))
    batched, alone = [], []
    with torch_threads():
        for rho in np.linspace(0.05, 0.2, moves):
            config = MeasureConfig(rho=float(rho))
            start = time.perf_counter()
            together = measures_over_scales(ref.model, ref.x, ref.y, 0, SCALES, config, REGION_MEASURES)
            batched.append(time.perf_counter() - start)
            start = time.perf_counter()
            single = [measures(rescale_layer(ref.model, 0, a), ref.x, ref.y, config, REGION_MEASURES) for a in SCALES]
            alone.append(time.perf_counter() - start)
            worst = max(abs(together[name][i] - row[name]) for i, row in enumerate(single) for name in REGION_MEASURES)
            assert worst < 1e-9, f"batched and one-at-a-time measures differ by {worst:g}"
    b, a = statistics.median(batched), statistics.median(alone)
    print(f"ten networks, five region measures, {moves} values of ρ (median s per move):")
    print(f"  batched {b:.3f}   one at a time {a:.3f}   ratio {a / b:.1f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
