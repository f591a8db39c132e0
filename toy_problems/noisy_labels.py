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
    dataset="spirals", noise=0.03, flip_rate=0.3, width=64, depth=2, lr=0.3, momentum=0.9, schedule="cosine",
    rho_sam=0.15, rho_asam=0.3, eta=0.01, snapshots=9,
)
PRESETS: dict[str, ClassifierConfig] = {
    # Fewer points are memorized sooner: SGD fits most flipped labels within 1000 steps (seconds).
    QUICK: ClassifierConfig(**_SETTING, n_train=200, steps=1000, members=1),
    # Measured (tests/test_classification_noisy_labels.py): clean test accuracy, mean of seeds 0-2,
    # SGD 78.8 %, SAM 86.2 %, ASAM 86.4 %; each seed gains >= 5.4 points with either.
    PAPER_EFFECT: ClassifierConfig(**_SETTING, n_train=300, steps=1500, members=3),
}


def clean_test_gains(run: ClassifierRun) -> dict[str, float]:
    """Final clean test accuracy of each sharpness-aware optimizer minus SGD's, in percentage
    points, averaged over the run's seeds (members)."""
    final = run.final("test_acc")
    return {name: 100.0 * (acc - final["SGD"]) for name, acc in final.items() if name != "SGD"}
