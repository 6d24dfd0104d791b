"""Input checking and numpy <-> torch conversion shared by the public functions.

Public functions accept numpy arrays or torch tensors and return the kind they were given.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:  # the grid is only duck-typed here (.tensor, .shape): runtime imports no model
    from ..physics.grid import Grid


def to_tensor(value, grid: Grid, name: str) -> torch.Tensor:
    """``value`` (array, tensor or sequence) as a tensor on the grid's device and dtype."""
    try:
        return grid.tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name} must be an array of numbers: {err}") from None


def like_input(result: torch.Tensor, original):
    """``result`` as numpy if ``original`` was not a tensor, else unchanged."""
    if isinstance(original, torch.Tensor):
        return result
    return result.detach().cpu().numpy()


def batch_size(m: torch.Tensor, grid: Grid, name: str = "m") -> int | None:
    """``None`` for ``(nz, ny, nx, 3)``, ``B`` for ``(B, nz, ny, nx, 3)``; else ``ValueError``."""
    shape = tuple(m.shape)
    if shape == grid.vector_shape:
        return None
    if len(shape) == 5 and shape[1:] == grid.vector_shape:
        return shape[0]
    raise ValueError(
        f"{name} has shape {shape}; expected (nz, ny, nx, 3) = {grid.vector_shape} "
        f"or a batch (B, {grid.nz}, {grid.ny}, {grid.nx}, 3)"
    )


def check_magnetization(m: torch.Tensor, grid: Grid, Ms: torch.Tensor | None = None, name: str = "m") -> int | None:
    """Validate a magnetization tensor; return its batch size (``None`` if unbatched).

    Raises ``ValueError`` for a wrong shape, NaN/inf, or a zero vector in a magnetic cell. The
    common case costs two passes: the squared vector lengths (a product with a ones column, 3x
    faster than torch's reduction over a trailing axis of 3) and their smallest and largest value
    (NaN and inf reach the largest, zero vectors the smallest).
    """
    batch = batch_size(m, grid, name)
    squared = torch.matmul(m.detach().square(), m.new_ones((3, 1))).squeeze(-1)
    shortest, longest = (float(v) for v in torch.aminmax(squared))
    if not math.isfinite(longest):
        bad = int((~torch.isfinite(m)).sum())
        if bad:
            raise ValueError(f"{name} contains NaN or inf values ({bad} of {m.numel()} entries)")
        raise ValueError(f"{name} has vectors too long for their length to be a finite number; expected unit vectors")
    if shortest > 0:
        return batch
    zero = squared == 0
    if Ms is not None:
        zero = zero & (Ms.detach() > 0)
    if bool(zero.any()):
        count = int(zero.sum())
        raise ValueError(f"{name} has {count} zero vector(s) in magnetic cells (Ms > 0); expected unit vectors")
    return batch


def check_vector_field(value, grid: Grid, batch: int | None, name: str) -> torch.Tensor | None:
    """A field given as a 3-vector, a ``(nz, ny, nx, 3)`` map or a batch ``(B, nz, ny, nx, 3)``."""
    if value is None:
        return None
    t = to_tensor(value, grid, name)
    shape = tuple(t.shape)
    allowed = [(3,), grid.vector_shape]
    if batch is not None:
        allowed += [(batch, 1, 1, 1, 3), (batch,) + grid.vector_shape]
    if shape not in allowed:
        raise ValueError(
            f"{name} has shape {shape}; expected a 3-vector (A/m) or a (nz, ny, nx, 3) = "
            f"{grid.vector_shape} map" + (f" (or with a leading batch axis of {batch})" if batch else "")
        )
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf values")
    return t


def as_numpy(value) -> np.ndarray:
    """A tensor or array-like as a numpy array."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    return np.asarray(value)
