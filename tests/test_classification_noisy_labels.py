"""The Noisy labels page's claim, measured on its "paper effect" preset (3 seeds, batched):
SAM and ASAM each beat SGD on clean test accuracy by at least 3 points, because SGD fits
more of the flipped labels (SAM paper Section 3.3, ASAM paper Table 6)."""
import pytest

from toy_problems.classification import train_classifiers
from toy_problems.noisy_labels import CLAIM_POINTS, PAPER_EFFECT, PRESETS, QUICK, clean_test_gains


@pytest.fixture(scope="module")
def paper_run():
    return train_classifiers(PRESETS[PAPER_EFFECT])


def test_paper_effect_sam_and_asam_each_beat_sgd_on_clean_test_accuracy_over_three_seeds(paper_run):
    assert paper_run.config.members == 3 and paper_run.config.optimizers == ("SGD", "SAM", "ASAM")
    gains = clean_test_gains(paper_run)
    assert gains["SAM"] >= CLAIM_POINTS, gains
    assert gains["ASAM"] >= CLAIM_POINTS, gains


def test_paper_effect_comes_from_sgd_memorizing_the_flipped_labels(paper_run):
    flipped_fit = paper_run.final("flipped_fit")
    train_acc = paper_run.final("train_acc")
    for name in ("SAM", "ASAM"):
        assert flipped_fit["SGD"] >= flipped_fit[name] + 0.1, flipped_fit
        assert train_acc["SGD"] > train_acc[name], train_acc


def test_presets_flip_the_stated_fraction_of_training_labels_only(paper_run):
    config = paper_run.config
    assert config.dataset == "spirals" and config.flip_rate == pytest.approx(0.3)
    assert paper_run.data.flipped.sum(1).tolist() == [round(0.3 * config.n_train)] * 3
    assert paper_run.data.y_test.sum(1).tolist() == [config.n_test // 2] * 3  # balanced, as drawn
    assert PRESETS[QUICK].model_copy(update=dict(n_train=300, steps=1500, members=3)) == config
