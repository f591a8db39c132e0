"""The resource guard: memory and time estimates before queuing, refusals that name what to change."""
from __future__ import annotations

import pytest

from asam_core.runs import resources
from asam_core.train.config import PRESETS, RunConfig

GB = 2**30


def test_the_profile_counts_the_parameters_and_grows_with_the_network():
    small, resnet = resources.profile("small_cnn", 10), resources.profile("resnet20", 10)
    assert small.parameters == 391_466 and resnet.parameters == 269_722  # the models' documented sizes
    assert small.macs_per_image < resnet.macs_per_image < resources.profile("wrn28_10", 10).macs_per_image


def test_a_run_that_cannot_fit_is_refused_naming_batch_size_model_and_the_estimate():
    config = RunConfig(model="small_cnn", batch_size=8192, device="cpu")
    estimate = resources.estimate(config, limit_bytes=int(1.5 * GB))  # the 1.5 GB cgroup
    assert not estimate.fits and estimate.peak_bytes > 4 * GB
    message = resources.refusal(config, estimate)
    assert message.startswith("batch_size 8192 with model small_cnn needs about ")
    assert "more than the 1.5 GB" in message and "lower batch_size" in message
    small = resources.estimate(config.model_copy(update={"batch_size": 128}), limit_bytes=int(1.5 * GB))
    assert small.fits and resources.refusal(config, small) is None


def test_m_sharpness_bounds_the_activations_of_one_pass():
    big = RunConfig(model="resnet20", batch_size=4096, device="cpu")
    assert resources.peak_bytes(big.model_copy(update={"m": 128}), "cpu") < resources.peak_bytes(big, "cpu") / 4


def test_the_paper_preset_on_a_cpu_needs_a_confirmation_and_the_classroom_one_does_not():
    paper = resources.estimate(PRESETS["Paper Table 2: ResNet-20 CIFAR-10"][2].model_copy(update={"device": "cpu"}))
    quick = resources.estimate(PRESETS["Classroom quick"][2].model_copy(update={"device": "cpu"}))
    assert paper.needs_confirmation and paper.seconds > 10 * 3600
    assert not quick.needs_confirmation and quick.seconds < 600
    assert resources.duration(paper.seconds).endswith(" h") or resources.duration(paper.seconds).endswith(" days")


def test_finished_runs_refine_the_time_estimate():
    config = PRESETS["Classroom quick"][2].model_copy(update={"device": "cpu"})
    table = resources.estimate(config).seconds
    took_twice_as_long = [(config, 2 * table)]
    assert resources.estimate(config, took_twice_as_long).seconds == pytest.approx(2 * table)
    on_another_device = [(config.model_copy(update={"device": "cuda"}), 10 * table)]
    assert resources.estimate(config, on_another_device).seconds == pytest.approx(table)


@pytest.mark.parametrize("seconds, text", [(40, "40 s"), (720, "12 min"), (3.5 * 3600, "3.5 h"), (3 * 86400, "3.0 days")])
def test_durations_in_words(seconds, text):
    assert resources.duration(seconds) == text
