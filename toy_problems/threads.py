"""One torch thread for the toy computations.

The toy problems are far too small for intra-op parallelism: on a shared machine torch's OpenMP
threads spin at their barriers while the other cores are busy (the 200 x 200 convergence map took
19-86 s on 2 threads against 1.6 s on one, benchmarks/README.md).  Every toy entry point runs
under ``torch_threads(1)`` whatever OMP_NUM_THREADS says; the app also pins its whole process.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator, ParamSpec, TypeVar

import torch

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def torch_threads(threads: int = 1) -> Iterator[None]:
    """Torch on ``threads`` intra-op threads inside the block, the previous count restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def one_thread(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: ``fn`` runs under torch_threads(1)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch_threads(1):
            return fn(*args, **kwargs)

    return wrapper
