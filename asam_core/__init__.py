"""ASAM Lab core: SAM / ASAM perturbations and optimizers (no Streamlit here).

The names below load on first use (PEP 562), so ``import asam_core.runs`` (the run store and
its command line) does not pay for importing torch.
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType
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
    "MemberMethod": "asam_core.step",
    "RowRegions": "asam_core.step",
    "member_methods_step": "asam_core.step",
    "sharpness_aware_step": "asam_core.step",
}
__all__ = sorted(_EXPORTS)


class _Package(ModuleType):
    """Exported names win over submodules of the same name: ``asam_core.perturbation`` is the
    function even after the submodule asam_core/perturbation.py was imported (the import system
    sets a package attribute per loaded submodule; that assignment is ignored for exported names)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _EXPORTS and isinstance(value, ModuleType):
            return
        super().__setattr__(name, value)

    def __getattr__(self, name: str) -> Any:
        if name not in _EXPORTS:
            raise AttributeError(f"module 'asam_core' has no attribute {name!r}")
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        super().__setattr__(name, value)
        return value


sys.modules[__name__].__class__ = _Package
