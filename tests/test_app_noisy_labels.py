"""AppTest of the Noisy labels page on a small setting given through the URL."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from toy_problems.classification import ClassifierConfig, train_classifiers
from toy_problems.noisy_labels import PRESETS, QUICK
from conftest import figure_specs

PAGE = str(Path(__file__).resolve().parents[1] / "views" / "noisy_labels.py")
SMALL = {"nl_steps": "60", "nl_width": "8", "nl_n_train": "60", "nl_flip_rate": "0.2", "nl_seed": "4"}


def open_page(query: dict[str, str]) -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def test_page_trains_the_url_setting_and_shows_boundaries_metrics_and_curves():
    at = open_page(SMALL)
    expected = ClassifierConfig.model_validate(
        PRESETS[QUICK].model_dump() | dict(steps=60, width=8, n_train=60, flip_rate=0.2, seed=4)
    )
    run = train_classifiers(expected)
    test_acc = [m.value for m in at.metric if m.label == "clean test acc"]
    assert test_acc == [f"{100 * run.final('test_acc')[name]:.1f}%" for name in ("SGD", "SAM", "ASAM")]
    train_acc = [m.value for m in at.metric if m.label == "train acc (noisy)"]
    assert train_acc == [f"{100 * run.final('train_acc')[name]:.1f}%" for name in ("SGD", "SAM", "ASAM")]
    assert len(figure_specs(at)) == 6
    fitted = [c.value for c in at.caption if "flipped points fitted" in c.value]
    assert fitted == [f"{100 * run.final('flipped_fit')[n]:.0f}% of the flipped points fitted to their wrong label."
                      for n in ("SGD", "SAM", "ASAM")]
    summary = next(m.value for m in at.markdown if "Clean test accuracy against SGD" in m.value)
    assert "SAM" in summary and "ASAM" in summary
    assert not at.success and not at.warning


def test_snapshot_slider_shows_the_boundaries_of_an_earlier_step():
    at = open_page(SMALL)
    final = figure_specs(at)[0]
    at.select_slider(key="nl_snapshot").set_value(0).run()
    assert not at.exception, at.exception
    assert figure_specs(at)[0] != final
    assert "after step 0 of 60" in " ".join(c.value for c in at.caption)
    assert at.query_params["nl_snapshot"] == "0"


def test_a_bad_url_value_is_reported_and_replaced_by_the_default():
    at = open_page(SMALL | {"nl_flip_rate": "0.9"})
    assert any("nl_flip_rate" in w.value for w in at.warning)


def test_choosing_the_paper_preset_sets_every_control_and_reports_the_measured_gains(monkeypatch):
    """The page states the claim only for the exact preset setting; a cheap stand-in preset keeps this fast
    (its gains are whatever it measures: the page must then show its warning instead of the claim)."""
    import toy_problems.noisy_labels as noisy_labels

    stand_in = PRESETS[noisy_labels.PAPER_EFFECT].model_copy(update=dict(steps=60, width=8, n_train=60))
    monkeypatch.setitem(noisy_labels.PRESETS, noisy_labels.PAPER_EFFECT, stand_in)
    at = open_page(SMALL)
    at.selectbox(key="nl_preset").set_value(noisy_labels.PAPER_EFFECT).run()
    assert not at.exception, at.exception
    assert at.slider(key="nl_members").value == 3 and at.number_input(key="nl_width").value == 8
    assert at.query_params["nl_preset"] == noisy_labels.PAPER_EFFECT
    run = train_classifiers(stand_in)
    gains = noisy_labels.clean_test_gains(run)
    claimed = min(gains.values()) >= noisy_labels.CLAIM_POINTS
    assert len(at.success) == int(claimed) and len(at.warning) == int(not claimed)
    summary = next(m.value for m in at.markdown if "Clean test accuracy against SGD" in m.value)
    assert f"SAM {gains['SAM']:+.1f} points" in summary and "mean over 3 seeds" in summary
