"""The "Sharpness vs gap" page (ASAM Table 1 in 2-D): tau of both measures, and rescaling from the URL."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

from conftest import figure_specs

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "sharpness_vs_gap.py")


def taus(at: AppTest) -> dict[str, str]:
    table = at.table[0].value
    return dict(zip(table.index, table["Kendall τ with the gap"]))


def test_rescaling_keeps_adaptive_sharpness_tau_and_moves_plain_sharpness_tau():
    at = AppTest.from_file(PAGE, default_timeout=300).run()
    assert not at.exception
    plain = taus(at)
    spec = figure_specs(at)[0]
    assert len(spec["data"][0]["x"]) == 16 and "Kendall τ" in spec["layout"]["annotations"][0]["text"]
    at.toggle(key="sg_rescale").set_value(True).run()
    rescaled = taus(at)
    assert rescaled["adaptive sharpness"] == plain["adaptive sharpness"]
    assert rescaled["sharpness"] != plain["sharpness"]
    assert at.query_params["sg_rescale"] in ("true", ["true"])
