"""ASAM Lab core: SAM / ASAM perturbations and optimizers (no Streamlit here)."""
from asam_core.optim import ASAM, SAM, frozen_batchnorm_stats, param_groups_for
from asam_core.perturbation import dual_vector, normalization_operator, perturbation, region_norm
from asam_core.step import sharpness_aware_step

__all__ = [
    "ASAM",
    "SAM",
    "dual_vector",
    "frozen_batchnorm_stats",
    "normalization_operator",
    "param_groups_for",
    "perturbation",
    "region_norm",
    "sharpness_aware_step",
]
