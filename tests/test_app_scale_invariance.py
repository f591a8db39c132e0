"""AppTest of the Scale invariance page: the slider moves sharpness, not adaptive sharpness."""
from __future__ import annotations

import base64
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import figure_specs

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "scale_invariance.py")


def shown(at: AppTest) -> dict[str, float]:
    """The measures table: measure -> value at Aw."""
    (table,) = at.table
    return {name: float(value) for name, value in table.value["at Aw"].items()}


def boundary_probabilities(at: AppTest) -> np.ndarray:
    """P(class 1) on the grid of the first figure (plotly sends it base64-encoded)."""
    z = figure_specs(at)[0]["data"][0]["z"]
    return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"])


def test_rescaling_slider_changes_sharpness_but_not_adaptive_sharpness_loss_or_boundary():
    at = AppTest.from_file(PAGE, default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at_one = shown(at)
    assert len(figure_specs(at)) == 2
    boundary = boundary_probabilities(at)
    at.select_slider(key="si_a").set_value(10.0).run()
    assert not at.exception, at.exception
    at_ten = shown(at)
    assert at.query_params["si_a"] == "10.0"
    for name in ("loss", "adaptive, element-wise", "adaptive, filter-wise"):
        assert at_ten[name] == pytest.approx(at_one[name], rel=1e-3), name
    assert at_ten["sharpness"] > 2 * at_one["sharpness"]
    assert at_ten["Hessian λ_max"] > 2 * at_one["Hessian λ_max"]
    np.testing.assert_allclose(boundary_probabilities(at), boundary, atol=1e-9)
