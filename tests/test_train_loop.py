"""The training loop end to end on a tiny archive: reporting order, schedule, resume, NaN, cancel."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import pytest
import torch
from cifar_fixtures import write_cifar

from asam_core.optim import SAM
from asam_core.step import sharpness_aware_step
from asam_core.train.checkpoint import load_checkpoint
from asam_core.train.config import RunConfig
from asam_core.train.loop import CHECKPOINT_NAME, EpochMetrics, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar")
    write_cifar(root, per_class=2, test_per_class=1)  # 20 training images, 10 test images
    return root


def tiny(data_dir, **overrides) -> RunConfig:
    options = dict(data_dir=str(data_dir), model="small_cnn", epochs=2, batch_size=8, log_every_steps=1, device="cpu")
    return RunConfig(**{**options, **overrides})


@dataclass
class Recorder:
    """A TrainSink that records everything and can stop or crash on cue."""

    checkpoint_dir: object = None
    stop_at_step: int | None = None
    crash_on_epoch: int | None = None
    steps: list = field(default_factory=list)
    epochs: list = field(default_factory=list)
    checkpoint_epoch_seen: list = field(default_factory=list)
    calls: int = 0

    def on_step(self, step, total_steps, train_loss):
        self.steps.append((step, total_steps, train_loss))

    def on_epoch(self, metrics: EpochMetrics):
        state = load_checkpoint(self.checkpoint_dir / CHECKPOINT_NAME) if self.checkpoint_dir else None
        self.checkpoint_epoch_seen.append(state["epoch"] if state else 0)
        self.epochs.append(metrics)
        if metrics.epoch == self.crash_on_epoch:
            raise SystemError("simulated crash between on_epoch and the checkpoint")

    def should_stop(self):
        self.calls += 1
        return self.stop_at_step is not None and self.calls >= self.stop_at_step


def cosine_lr(lr, step_index, total):
    return 0.5 * lr * (1 + math.cos(math.pi * step_index / total))


@pytest.mark.parametrize("optimizer", ["sgd", "asam"])
def test_two_epoch_run_reports_in_order_and_checkpoints_after_each_epoch(data_dir, tmp_path, optimizer):
    sink = Recorder(checkpoint_dir=tmp_path)
    result = train(tiny(data_dir, optimizer=optimizer), sink, tmp_path)
    assert (result.status, result.epochs_completed) == ("done", 2)
    assert [m.epoch for m in sink.epochs] == [1, 2]
    # on_epoch(e) comes before e's checkpoint: the file still holds the previous epoch
    assert sink.checkpoint_epoch_seen == [0, 1]
    assert load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] == 2
    assert [(s, t) for s, t, _ in sink.steps] == [(k, 4) for k in range(1, 5)]  # 20 images // 8 = 2 steps per epoch
    for m in sink.epochs:
        assert m.lr == pytest.approx(cosine_lr(0.1, 2 * m.epoch - 1, 4))  # lr of the epoch's last step
        assert 0 <= m.train_acc <= 1 and 0 <= m.test_acc <= 1 and m.seconds > 0
        assert (m.train_acc * 16).is_integer() and (m.test_acc * 10).is_integer()
        assert math.isfinite(m.train_loss) and math.isfinite(m.test_loss)
    assert result.last == sink.epochs[-1]
    assert (sink.epochs[-1].traj_x, sink.epochs[-1].traj_y) != (0.0, 0.0)


def test_eval_interval_leaves_test_metrics_empty_except_the_last_epoch(data_dir, tmp_path):
    sink = Recorder()
    train(tiny(data_dir, optimizer="sgd", epochs=3, eval_every_epochs=2), sink, tmp_path)
    assert [m.test_acc is None for m in sink.epochs] == [True, False, False]


def test_the_final_models_training_accuracy_is_measured_in_eval_mode_on_the_labels_it_trained_on(data_dir, tmp_path):
    from asam_core.train.data import load_cifar, normalize
    from asam_core.train.models import build_model

    config = tiny(data_dir, optimizer="sgd", dropout=0.5, label_noise=0.3)
    sink = Recorder()
    train(config, sink, tmp_path)
    assert sink.epochs[0].train_eval_acc is None and sink.epochs[-1].train_eval_acc is not None
    data = load_cifar("cifar10", data_dir, label_noise=0.3)
    model = build_model("small_cnn", 10, dropout=0.5)
    model.load_state_dict(load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"])
    with torch.no_grad():
        correct = (model.eval()(normalize(data.train_x, data)).argmax(1) == data.train_y).float().mean().item()
    assert sink.epochs[-1].train_eval_acc == pytest.approx(correct, abs=1 / 20 + 1e-9)  # at most one near-tie apart


def _final_state(directory):
    state = load_checkpoint(directory / CHECKPOINT_NAME)
    return state["model"], state["optimizer"]["state"]


def _assert_same_tensors(a, b):
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], dict):
            _assert_same_tensors(a[key], b[key])
        else:
            assert torch.equal(a[key], b[key]), key


def test_resume_after_cancel_and_after_crash_is_bit_identical(data_dir, tmp_path):
    config = tiny(data_dir, optimizer="asam", m=4)
    straight = Recorder()
    assert train(config, straight, tmp_path / "straight").status == "done"

    cancelled = Recorder(stop_at_step=4)  # cancelled before the second step of epoch 2
    result = train(config, cancelled, tmp_path / "cut")
    assert (result.status, result.epochs_completed) == ("cancelled", 1)
    resumed = Recorder()
    assert train(config, resumed, tmp_path / "cut").status == "done"
    assert [m.epoch for m in resumed.epochs] == [2]

    crashed = Recorder(crash_on_epoch=2)
    with pytest.raises(SystemError):
        train(config, crashed, tmp_path / "crash")
    rerun = Recorder()
    train(config, rerun, tmp_path / "crash")
    assert [m.epoch for m in rerun.epochs] == [2]  # reported epoch 2 again: it was never checkpointed

    def same_metrics(a, b):
        return {k: v for k, v in asdict(a).items() if k != "seconds"} == {k: v for k, v in asdict(b).items() if k != "seconds"}

    for other in (resumed, rerun):
        assert same_metrics(other.epochs[-1], straight.epochs[-1])
    for directory in ("cut", "crash"):
        for a, b in zip(_final_state(tmp_path / "straight"), _final_state(tmp_path / directory)):
            _assert_same_tensors(a, b)


def test_resume_with_other_settings_fails_and_names_them(data_dir, tmp_path):
    train(tiny(data_dir, optimizer="sgd", epochs=1), Recorder(), tmp_path)
    result = train(tiny(data_dir, optimizer="sgd", epochs=1, lr=0.05, label="renamed"), Recorder(), tmp_path)
    assert result.status == "failed" and "lr" in result.reason and "label" not in result.reason
    done_again = train(tiny(data_dir, optimizer="sgd", epochs=1, label="renamed"), Recorder(), tmp_path)
    assert (done_again.status, done_again.epochs_completed) == ("done", 1)


def test_diverging_run_fails_with_the_reason(data_dir, tmp_path):
    sink = Recorder()
    exploding = tiny(data_dir, optimizer="sam", epochs=3).model_copy(update={"lr": 1e30})  # past RunConfig's bound
    result = train(exploding, sink, tmp_path)
    assert result.status == "failed"
    assert "not finite" in result.reason and "training loss became" in result.reason
    assert all(math.isfinite(loss) for _, _, loss in sink.steps)
    assert not (tmp_path / CHECKPOINT_NAME).exists() or load_checkpoint(tmp_path / CHECKPOINT_NAME)["epoch"] < 3


def test_cancel_before_the_first_step_writes_nothing(data_dir, tmp_path):
    result = train(tiny(data_dir), Recorder(stop_at_step=1), tmp_path)
    assert (result.status, result.epochs_completed, result.last) == ("cancelled", 0, None)
    assert not (tmp_path / CHECKPOINT_NAME).exists()


def test_missing_data_fails_with_the_data_message(tmp_path):
    result = train(tiny(tmp_path / "empty", download=False), Recorder(), tmp_path)
    assert result.status == "failed" and "cifar-10-python.tar.gz" in result.reason


def test_first_pass_hook_sees_the_outputs_at_w_of_every_chunk():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    x, y = torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])
    expected = model(x).detach()
    seen = []
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.5)
    sharpness_aware_step(opt, model, torch.nn.functional.cross_entropy, x, y, m=2,
                         on_first_pass=lambda out, t: seen.append((out, t)))
    assert len(seen) == 3
    torch.testing.assert_close(torch.cat([o for o, _ in seen]), expected)
    assert torch.equal(torch.cat([t for _, t in seen]), y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_uses_channels_last_and_bf16_and_stays_finite(data_dir, tmp_path):
    sink = Recorder()
    result = train(tiny(data_dir, optimizer="asam", device="cuda"), sink, tmp_path)
    assert result.status == "done" and all(math.isfinite(m.test_loss) for m in sink.epochs)
    weight = load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"]["0.weight"]
    assert weight.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("content, reason", [
    (b"", "is empty (0 bytes)"),
    (None, "is truncated or not a checkpoint"),  # the first half of a real checkpoint
    (b"not a checkpoint at all", "is truncated or not a checkpoint"),
])
def test_a_damaged_checkpoint_fails_the_resume_with_a_clear_reason(data_dir, tmp_path, content, reason):
    config = tiny(data_dir, optimizer="sgd", epochs=2)
    train(config, Recorder(stop_at_step=3), tmp_path)  # stops after epoch 1
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2] if content is None else content)
    result = train(config, Recorder(), tmp_path)
    assert result.status == "failed" and result.reason.startswith("cannot resume: ") and reason in result.reason
    assert "\n" not in result.reason and str(path) in result.reason


def test_a_checkpoint_of_another_run_key_is_refused(data_dir, tmp_path):
    config = tiny(data_dir, optimizer="sgd", epochs=2)
    train(config, Recorder(stop_at_step=3), tmp_path, run_key="a" * 32)  # stops after epoch 1
    result = train(config, Recorder(), tmp_path, run_key="b" * 32)
    assert result.status == "failed" and "written by another run" in result.reason
    resumed = Recorder()
    assert train(config, resumed, tmp_path, run_key="a" * 32).status == "done"
    assert [m.epoch for m in resumed.epochs] == [2]


def test_a_failed_checkpoint_write_leaves_no_partial_file(tmp_path):
    from asam_core.train.checkpoint import save_checkpoint

    save_checkpoint(tmp_path / CHECKPOINT_NAME, {"epoch": 1})
    with pytest.raises(Exception):  # pickling fails half-way through the write
        save_checkpoint(tmp_path / CHECKPOINT_NAME, {"epoch": 2, "unpicklable": lambda: None})
    assert [p.name for p in tmp_path.iterdir()] == [CHECKPOINT_NAME]
    assert torch.load(tmp_path / CHECKPOINT_NAME)["epoch"] == 1


class ArtifactRecorder(Recorder):
    """A Recorder that also keeps the artifacts (path sketches, loss profiles)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.artifacts: dict[int, dict[str, bytes]] = {}

    def on_artifacts(self, epoch, artifacts):
        self.artifacts[epoch] = artifacts


@pytest.mark.parametrize("every", [0, 2])
def test_run_reports_its_path_sketch_every_epoch_and_flatness_when_measured(data_dir, tmp_path, every):
    import json

    import numpy as np

    from asam_core.train.flatness import PROFILE_T
    from asam_core.train.models import build_model
    from asam_core.train.path_sketch import SKETCH_DIM, PathSketch

    config = tiny(data_dir, optimizer="asam", epochs=3, flatness_every_epochs=every)
    sink = ArtifactRecorder()
    assert train(config, sink, tmp_path).status == "done"
    measured = [3] if every == 0 else [2, 3]
    assert sorted(sink.artifacts) == [1, 2, 3]
    assert [e for e, a in sink.artifacts.items() if "loss_profile" in a] == measured
    assert [e for e, a in sink.artifacts.items() if "loss_surface" in a] == [3]
    assert [m.epoch for m in sink.epochs if m.sharpness is not None] == measured
    for m in sink.epochs:
        assert (m.adaptive_sharpness is None) == (m.lambda_max is None) == (m.epoch not in measured)
    profile = json.loads(sink.artifacts[3]["loss_profile"])
    assert profile["t"] == list(PROFILE_T) and len(profile["loss"]) == 2 and profile["seconds"] > 0
    final = np.frombuffer(sink.artifacts[3]["path_sketch"], dtype=np.float32)
    assert final.shape == (SKETCH_DIM,)
    torch.manual_seed(config.seed)
    w0 = build_model(config.model, 10)
    model = build_model(config.model, 10)
    model.load_state_dict(load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"])
    expected = PathSketch(w0.parameters())(model.parameters())
    torch.testing.assert_close(torch.from_numpy(final.copy()), expected, rtol=1e-5, atol=1e-5)
