"""Settings that reproduce the ASAM paper's Figure 3 on L(w) = |w1 ReLU(w2) - 0.04| (measured).

With rho = 0.05 and lr = 0.005 for 2,000 steps (tests/test_toy_figure3.py checks every claim):
  from (0.3, 0.033) SAM never moves (w2 + eps2 < 0 at the start, so the gradient at w + eps
  is zero) while ASAM reaches the valley w1 w2 = 0.04 near its start, at about (0.31, 0.13);
  from (0.2, 0.05) SAM drifts along the valley to about (0.20, 0.20) while ASAM stops on the
  valley at about (0.25, 0.16), w1 > w2.
Large steps (lr ~ 0.05) bounce every method across the non-smooth valley and push them all
to the diagonal w1 = w2, which hides the difference.  ASAM uses p = 2, element-wise, eta = 0.01.
"""
from __future__ import annotations

from toy_problems.simulate import SimulationConfig

FIGURE3_LOSS = "relu_product"
FIGURE3_CONFIG = SimulationConfig(lr=0.005, steps=2000, rho=0.05, p=2.0, eta=0.01, momentum=0.0)
FIGURE3_STARTS: dict[str, tuple[float, float]] = {
    "Fig. 3: w0 = (0.2, 0.05)": (0.2, 0.05),
    "Fig. 3: w0 = (0.3, 0.033)": (0.3, 0.033),
}
