"""ASAM Lab core: SAM / ASAM perturbations and optimizers (no Streamlit here).

The names below load on first use (PEP 562), so ``import asam_core.runs`` (the run store and
its command line) does not pay for importing torch.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ASAM": "asam_core.optim",
    "SAM": "asam_core.optim",
    "frozen_batchnorm_stats": "asam_core.optim",
    "param_groups_for": "asam_core.optim",
    "dual_vector": "asam_core.perturbation",
    "normalization_operator": "asam_core.perturbation",
    "perturbation": "asam_core.perturbation",
    "region_norm": "asam_core.perturbation",
    "sharpness_aware_step": "asam_core.step",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'asam_core' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value
