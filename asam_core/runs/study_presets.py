"""The papers' sweeps as ready-made studies (asam_core.runs.sweep), each at two budgets.

"classroom": a small CNN on a 1,000-image CIFAR-10 subset for a few epochs, minutes to an hour on a
CPU; its description says what it can and cannot show.  "paper": the paper's recipe (all of the
training set, 200 epochs, ResNet / WRN), for a GPU or a Ray cluster.  ``STUDY_PRESETS`` maps a title
to its Sweep; ``find_study_preset`` matches a title ignoring case and punctuation, with or without its
parenthesis ("label-noise-rates-classroom").
"""
from __future__ import annotations

import re
from typing import Any

from asam_core.runs.sweep import Sweep

# A classroom run: 100 images per class, no augmentation, tests every 5 epochs (the last always).
_CLASSROOM: dict[str, Any] = {"model": "small_cnn", "subset_per_class": 100, "augment": False, "lr": 0.05,
                              "eval_every_epochs": 5, "log_every_steps": 5}
_PAPER: dict[str, Any] = {"model": "resnet20"}

_RHO_VARIANTS_CLASSROOM: list[dict[str, Any]] = [
    {"label": "SAM (reference)", "optimizer": "sam", "rho": [0.02, 0.05, 0.1]},
    {"label": "ASAM p=2 element-wise", "optimizer": "asam", "rho": [0.2, 0.5, 1.0]},
    {"label": "ASAM p=2 element-wise + bias", "optimizer": "asam", "normalize_bias": True, "rho": [0.2, 0.5, 1.0]},
    {"label": "ASAM p=2 filter-wise", "optimizer": "asam", "normalization": "filter", "rho": [0.2, 0.5, 1.0]},
    {"label": "ASAM p=∞ element-wise", "optimizer": "asam", "p": "inf", "rho": [0.002, 0.005, 0.01]},
]
_PAPER_RHOS = {"sam": [0.01, 0.02, 0.05, 0.1, 0.2], "asam": [0.1, 0.2, 0.5, 1.0, 2.0], "inf": [0.001, 0.002, 0.005, 0.01, 0.02]}
_RHO_VARIANTS_PAPER: list[dict[str, Any]] = [
    {**v, "rho": _PAPER_RHOS["inf" if v.get("p") == "inf" else v["optimizer"]]} for v in _RHO_VARIANTS_CLASSROOM
]
_NOISE_VARIANTS = [{"label": "SGD", "optimizer": "sgd"}, {"label": "SAM", "optimizer": "sam"},
                   {"label": "ASAM", "optimizer": "asam"}]

RHO_SWEEP = "rho sweep (ASAM Fig. 4)"
GAP_CORRELATION = "Sharpness vs generalization gap (ASAM Table 1 / Fig. 2)"
M_SHARPNESS = "m-sharpness (SAM Fig. 3)"
NOISE_RATES = "Label-noise rates (ASAM Table 6)"
BUDGETS = ("classroom", "paper")


def _title(study: str, budget: str) -> str:
    return f"{study} · {budget}"


STUDY_PRESETS: dict[str, Sweep] = {
    _title(RHO_SWEEP, "classroom"): Sweep(
        name=_title(RHO_SWEEP, "classroom"), figure="curves", x="rho",
        description=(
            "Test accuracy against ρ for ASAM's variants (element-wise p = 2 with and without bias normalization, "
            "filter-wise, p = ∞) with SAM as the reference, 2 seeds each (95% intervals): 30 runs of a small CNN on "
            "1,000 CIFAR-10 images with 40% flipped labels, 15 epochs. Shows where each variant's ρ is too small or "
            "too large at this budget. Cannot show the paper's accuracies or the fine differences between the "
            "variants (a few tenths of a point in the paper, less than the seed-to-seed spread here)."),
        base={**_CLASSROOM, "label_noise": 0.4, "epochs": 15}, variants=_RHO_VARIANTS_CLASSROOM, seeds=[0, 1]),
    _title(RHO_SWEEP, "paper"): Sweep(
        name=_title(RHO_SWEEP, "paper"), figure="curves", x="rho",
        description=("The same five variants at the paper's recipe: ResNet-20 on all of CIFAR-10, 200 epochs, five ρ "
                     "values each, 3 seeds (75 runs). Needs a GPU or a Ray cluster."),
        base=_PAPER, variants=_RHO_VARIANTS_PAPER, seeds=[0, 1, 2]),
    _title(GAP_CORRELATION, "classroom"): Sweep(
        name=_title(GAP_CORRELATION, "classroom"), figure="correlation",
        description=(
            "16 SGD-trained small CNNs on 1,000 clean CIFAR-10 images (15 epochs) over a grid of batch size, learning "
            "rate, weight decay and dropout; sharpness and adaptive sharpness (p = 2 and p = ∞) of each against its "
            "generalization gap, with Kendall τ and the granulated Ψ. Shows the rank correlation of each measure "
            "with the gap on real networks. Cannot show the paper's values: 16 models give a τ whose spread is "
            "about ±0.3, and the grid is 2 values per hyper-parameter."),
        base={**_CLASSROOM, "optimizer": "sgd", "epochs": 15},
        grid={"batch_size": [32, 128], "lr": [0.01, 0.1], "weight_decay": [0.0, 5e-4], "dropout": [0.0, 0.5]}),
    _title(GAP_CORRELATION, "paper"): Sweep(
        name=_title(GAP_CORRELATION, "paper"), figure="correlation",
        description=("The grid at the paper's scale: ResNet-20 on all of CIFAR-10, 200 epochs, 3 values of each "
                     "hyper-parameter (81 runs). Needs a GPU or a Ray cluster."),
        base={**_PAPER, "optimizer": "sgd"},
        grid={"batch_size": [64, 128, 256], "lr": [0.02, 0.05, 0.1], "weight_decay": [0.0, 1e-4, 5e-4],
              "dropout": [0.0, 0.25, 0.5]}),
    _title(M_SHARPNESS, "classroom"): Sweep(
        name=_title(M_SHARPNESS, "classroom"), figure="curves", x="rho", y="test_error",
        description=(
            "SAM's test error against ρ when each perturbation is computed from m examples (m = 128: the whole "
            "batch; 32; 8): 12 runs of a small CNN on 1,000 CIFAR-10 images, 15 epochs. Shows how m changes the "
            "useful range of ρ. Cannot show the paper's finding that small m generalizes best with confidence: "
            "one seed, and a budget where the networks do not fit their data."),
        base={**_CLASSROOM, "optimizer": "sam", "epochs": 15},
        variants=[{"label": f"m = {m}", "m": m} for m in (128, 32, 8)], grid={"rho": [0.02, 0.05, 0.1, 0.2]}),
    _title(M_SHARPNESS, "paper"): Sweep(
        name=_title(M_SHARPNESS, "paper"), figure="curves", x="rho", y="test_error",
        description=("m-sharpness at the paper's recipe: ResNet-20 on all of CIFAR-10, 200 epochs, m = 128, 32, 8, "
                     "five ρ values, 3 seeds (45 runs). Needs a GPU or a Ray cluster (m = 8 runs 16 small "
                     "perturbation passes per batch)."),
        base={**_PAPER, "optimizer": "sam"},
        variants=[{"label": f"m = {m}", "m": m} for m in (128, 32, 8)], grid={"rho": [0.01, 0.02, 0.05, 0.1, 0.2]},
        seeds=[0, 1, 2]),
    _title(NOISE_RATES, "classroom"): Sweep(
        name=_title(NOISE_RATES, "classroom"), figure="curves", x="label_noise",
        description=(
            "Clean test accuracy of SGD, SAM and ASAM at 20%, 40%, 60% and 80% flipped training labels: 12 runs of a "
            "small CNN on 1,000 CIFAR-10 images, 20 epochs. Shows accuracy falling with the noise rate for every "
            "method. Cannot show the paper's margins with confidence (one seed; the classroom preset of the CIFAR "
            "page measures the 40% point over 4 seeds)."),
        base={**_CLASSROOM, "epochs": 20}, variants=_NOISE_VARIANTS, grid={"label_noise": [0.2, 0.4, 0.6, 0.8]}),
    _title(NOISE_RATES, "paper"): Sweep(
        name=_title(NOISE_RATES, "paper"), figure="curves", x="label_noise",
        description=("ASAM Table 6's setting: ResNet-32 on all of CIFAR-10 with 20-80% flipped labels, 200 epochs, "
                     "SGD / SAM / ASAM, 3 seeds (36 runs). Needs a GPU or a Ray cluster."),
        base={"model": "resnet32"}, variants=_NOISE_VARIANTS, grid={"label_noise": [0.2, 0.4, 0.6, 0.8]},
        seeds=[0, 1, 2]),
}


def find_study_preset(name: str) -> str:
    """The STUDY_PRESETS title matching ``name`` ignoring case and punctuation; KeyError (one line) if none."""
    def key(text: str) -> str:
        return re.sub(r"[^a-z0-9]", "", text.lower())

    for title in STUDY_PRESETS:
        if key(name) in (key(title), key(re.sub(r"\(.*?\)", "", title))):
            return title
    raise KeyError(f"unknown study preset {name!r}; choose one of {list(STUDY_PRESETS)}")


# What the papers report next to each study, with the source; only numbers read from a public source
# are given (labelled as such), never numbers recalled.
PAPER_REFERENCES: dict[str, str] = {
    RHO_SWEEP: ("Published reference (not from this app): ASAM's first author reported, for WRN-16-8 on CIFAR-10 "
                "(200 epochs, davda54/sam's implementation, with bias normalization), ASAM test error 2.75%, 2.69%, "
                "2.55%, 2.90% at ρ = 0.5, 1, 2, 5; without bias normalization ρ = 0.5 gave 2.37% "
                "(github.com/davda54/sam, issue 37). SAM's reference ρ on CIFAR-10 is 0.05, ASAM's 0.5 "
                "(github.com/SamsungLabs/ASAM README). Compare shapes, not values: the classroom budget trains a "
                "small CNN on 1,000 images."),
    GAP_CORRELATION: ("The paper's claim (Kwon et al. 2021, abstract, Table 1, Figure 2): sharpness in a fixed-radius "
                      "region is sensitive to rescaling, which weakens its link with the generalization gap; adaptive "
                      "sharpness is scale-invariant and correlates better. Its cell values are not reproduced here "
                      "(not verified from a copy of the paper)."),
    M_SHARPNESS: ("The SAM paper's Figure 3 (middle) plots test error against ρ for several m; its values are not "
                  "reproduced here (not verified from a copy of the paper)."),
    NOISE_RATES: ("The SAM paper's abstract reports robustness to label noise on par with methods built for noisy "
                  "labels; ASAM's Table 6 compares SGD, SAM and ASAM at 20-80% noise with ResNet-32. Its values are "
                  "not reproduced here (not verified from a copy of the paper)."),
}


def paper_reference(title: str) -> str:
    """The PAPER_REFERENCES text of the study preset ``title`` (either budget); "" for other studies."""
    return next((text for study, text in PAPER_REFERENCES.items() if title.startswith(study)), "")
