"""What the CIFAR page draws from a run's artifacts (asam_core.train.loop): the shared PCA plane of
runs that start from one initialization, and the 1-D loss profiles of the trained models.

Runs share their initial weights w0 exactly when they share model, seed and dataset (the loop seeds
the initialization with the run's seed; the dataset sets the classifier's width), so only such runs
are projected together: ``shared_planes`` returns one plane per initialization, never a mixed one.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import torch

from asam_core.runs.store import RunRecord
from asam_core.train.path_sketch import pca_plane


def initialization(run: RunRecord) -> tuple[str, int, str]:
    """(model, seed, dataset): runs with equal values start from the same weights w0."""
    return run.config.model, run.config.seed, run.config.dataset


@dataclass(frozen=True)
class SharedPlane:
    """Runs from one w0 on their top two principal directions: epochs[run] starts with 0 (w0);
    coordinates[run] is (len(epochs[run]), 2); explained = share of the paths' squared length per axis."""

    initialization: tuple[str, int, str]
    run_ids: tuple[int, ...]
    epochs: dict[int, list[int]]
    coordinates: dict[int, np.ndarray]
    explained: tuple[float, float]

    def axis_title(self, axis: int) -> str:
        """``PC1 (83% of the path)``."""
        return f"PC{axis + 1} ({self.explained[axis]:.0%} of the path)"


def shared_planes(runs: Sequence[RunRecord], sketches: Mapping[int, Sequence[tuple[int, bytes]]]) -> list[SharedPlane]:
    """One plane per initialization among ``runs`` that have path sketches (store.artifacts(..., "path_sketch"))."""
    groups: dict[tuple[str, int, str], list[RunRecord]] = {}
    for run in runs:
        if run.config is not None and sketches.get(run.id):
            groups.setdefault(initialization(run), []).append(run)
    planes = []
    for key, members in groups.items():
        paths = {str(run.id): torch.from_numpy(np.stack([np.frombuffer(data, dtype=np.float32) for _, data in
                                                         sketches[run.id]]).copy()) for run in members}
        plane = pca_plane(paths)
        planes.append(SharedPlane(
            key, tuple(run.id for run in members),
            {run.id: [0] + [epoch for epoch, _ in sketches[run.id]] for run in members},
            {run.id: plane.coordinates[str(run.id)].numpy() for run in members},
            plane.explained,
        ))
    return planes


@dataclass(frozen=True)
class LossProfile:
    """The last measured profile of a run: loss[j][i] = L(w + t[i] d_j) at ``epoch``."""

    epoch: int
    t: list[float]
    loss: list[list[float]]
    seconds: float


def loss_profiles(profiles: Mapping[int, Sequence[tuple[int, bytes]]]) -> dict[int, LossProfile]:
    """run id -> its last loss profile (store.artifacts(..., "loss_profile"))."""
    found = {}
    for run_id, rows in profiles.items():
        if rows:
            epoch, data = rows[-1]
            value = json.loads(data)
            found[run_id] = LossProfile(epoch, value["t"], value["loss"], value.get("seconds", 0.0))
    return found


@dataclass(frozen=True)
class LossSurface:
    """A run's loss around its path (asam_core.train.flatness.loss_surface): loss[j][i] at
    (alpha[i], beta[j]) in units of |w_T - w0|, and the run's path on that plane, path[t] = (a_t, b_t)
    for epochs[t] (epoch 0 = w0 = (0, 0); the last epoch near (1, 0), to the sketch's accuracy)."""

    alpha: list[float]
    beta: list[float]
    loss: list[list[float]]
    length: float
    epochs: list[int]
    path: np.ndarray


def loss_surface(surfaces: Sequence[tuple[int, bytes]], sketches: Sequence[tuple[int, bytes]]) -> LossSurface | None:
    """A run's last stored loss surface with its path projected from the epoch sketches:
    a_t = <S(w_t - w0), S e1> / |w_T - w0|, b_t = <S(w_t - w0), S e2> / |w_T - w0|."""
    if not surfaces:
        return None
    value = json.loads(surfaces[-1][1])
    axes = np.stack([np.asarray(value["axis1"]), np.asarray(value["axis2"])]).T
    points = np.stack([np.frombuffer(data, dtype=np.float32) for _, data in sketches]).astype(np.float64)
    path = np.vstack([np.zeros((1, 2)), points @ axes / max(value["length"], 1e-12)])
    return LossSurface(value["alpha"], value["beta"], value["loss"], value["length"],
                       [0] + [epoch for epoch, _ in sketches], path)
