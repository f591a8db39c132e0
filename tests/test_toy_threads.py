"""The toy computations run on one torch thread even when the process has more (OpenMP threads
spin at their barriers on a shared machine: benchmarks/README.md), and leave the count as it was."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest

from toy_problems import losses
from toy_problems.convergence import convergence_map
from toy_problems.losses import LOSSES
from toy_problems.regions import REGIONS, region_pair
from toy_problems.simulate import SimulationConfig, simulate

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def spying(name: str, seen: list[int]) -> losses.Loss2D:
    """LOSSES[name] whose tensor gradient and value record torch's thread count when called."""
    loss = LOSSES[name]

    def grad(w):
        seen.append(torch.get_num_threads())
        return loss.grad(w)

    def value(w):
        seen.append(torch.get_num_threads())
        return loss.value(w)

    return dataclasses.replace(loss, grad=grad, value=value)


def with_threads(count: int):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    return before


def test_simulate_map_and_regions_run_on_one_thread_and_restore_the_count():
    seen: list[int] = []
    loss = spying("product", seen)
    before = with_threads(2)
    try:
        simulate(loss, torch.tensor([[1.0, 0.5]]), SimulationConfig(steps=5))
        convergence_map(loss, loss.box, 3, SimulationConfig(steps=5))
        region_pair(loss, torch.tensor([1.0, 1.0], dtype=torch.float64), 2.0, REGIONS["sphere"], 0.3, 0.0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}


def test_the_app_computes_on_one_thread_whatever_the_process_has(monkeypatch):
    seen: list[int] = []
    monkeypatch.setitem(LOSSES, "relu_product", spying("relu_product", seen))
    before = with_threads(2)
    try:
        at = AppTest.from_file(APP, default_timeout=180)
        at.query_params.update({"traj_map_n": "25", "traj_map_steps": "100", "traj_steps": "100"})
        at.run()
        at.switch_page("views/trajectories.py").run()
        assert not at.exception, [e.value for e in at.exception]
    finally:
        torch.set_num_threads(before)
    assert seen and set(seen) == {1}
