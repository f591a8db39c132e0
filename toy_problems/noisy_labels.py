"""Noisy labels in 2-D: presets of the experiment and the numbers the page reports.

SAM paper Section 3.3 and ASAM paper Table 6 report that sharpness-aware training resists
label noise.  Here: a ReLU MLP trained full-batch on two spirals with symmetric label flips,
SGD against SAM and ASAM from the same initialization (toy_problems.classification).
"""
from __future__ import annotations

from toy_problems.classification import ClassifierConfig, ClassifierRun

QUICK = "Quick look (1 seed)"
PAPER_EFFECT = "Paper effect (3 seeds)"
CLAIM_POINTS = 3.0

_SETTING = dict(
    dataset="spirals", n_train=300, flip_rate=0.3, width=128, depth=2, steps=1500, lr=0.2,
    momentum=0.9, rho_sam=0.15, rho_asam=0.35, eta=0.01,
)
PRESETS: dict[str, ClassifierConfig] = {
    QUICK: ClassifierConfig(**_SETTING, members=1),
    PAPER_EFFECT: ClassifierConfig(**_SETTING, members=3),
}


def clean_test_gains(run: ClassifierRun) -> dict[str, float]:
    """Final clean test accuracy of each sharpness-aware optimizer minus SGD's, in percentage
    points, averaged over the run's seeds (members)."""
    final = run.final("test_acc")
    return {name: 100.0 * (acc - final["SGD"]) for name, acc in final.items() if name != "SGD"}
