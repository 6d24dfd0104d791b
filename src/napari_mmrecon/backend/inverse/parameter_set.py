"""Named parameters of an inverse problem and their unconstrained coordinates.

An inverse problem optimizes a flat vector ``theta`` of unconstrained coordinates. A
``ParameterSet`` says which named parameter each slice of ``theta`` is, and maps it to values:

- ``"log"`` (Ms, A, Ku, D, the height): ``p = p0 exp(B tanh(theta / B))`` elementwise, with
  ``B = LOG_RANGE``: each value stays within a factor ``exp(B)`` of its start and keeps its sign
  (for D, the chirality). Bounds by reparameterization, never by clipping.
- ``"linear"`` (an image offset, skyrmion centres, a bias map): ``p = p0 + scale * theta``.

Each parameter is a scalar or an array (a per-cell map, a list of centres); the values keep the
start's shape. The Jacobians of the fits are taken with respect to *natural steps* ``eps``: a
relative change ``p0 (1 + eps)`` for log parameters, ``p0 + scale eps`` for linear ones; the chain
rule to ``theta`` is ``rate`` (``d eps / d theta``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

LOG_RANGE = math.log(10.0)
"""Log-scaled parameters stay within ``exp(+-LOG_RANGE)`` (a factor 10) of their start."""
TRANSFORMS = ("log", "linear")


@dataclass(frozen=True)
class Parameter:
    """One named parameter.

    Parameters
    ----------
    name : str
    start : tensor
        Start value(s) in SI units: 0-d for a scalar, any shape for an array.
    transform : "log" or "linear"
    scale : float
        Units per unit of ``theta`` (linear parameters only).
    max_step : float
        The largest natural step an optimizer takes in one iteration (relative change, or units of
        ``scale``): a trust region against steps into parameters far from any data.
    """

    name: str
    start: torch.Tensor
    transform: str = "log"
    scale: float = 1.0
    max_step: float = 0.2

    def __post_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(f"transform must be one of {TRANSFORMS}, got {self.transform!r}")
        if self.transform == "log" and bool((self.start == 0).any()):
            raise ValueError(f"{self.name} must start from a non-zero value to be fitted (it is fitted on a log scale)")

    @property
    def size(self) -> int:
        return self.start.numel()

    def value(self, theta: torch.Tensor) -> torch.Tensor:
        """Value(s) of this parameter for its slice ``theta`` (flat), in the start's shape."""
        t = theta.reshape(self.start.shape)
        if self.transform == "log":
            return self.start * torch.exp(LOG_RANGE * torch.tanh(t / LOG_RANGE))
        return self.start + self.scale * t

    def rate(self, theta: torch.Tensor) -> torch.Tensor:
        """``d eps / d theta`` per element (flat): ``sech^2(theta / B)`` for log, 1 for linear."""
        if self.transform == "log":
            return 1 / torch.cosh(theta.detach() / LOG_RANGE) ** 2
        return torch.ones_like(theta)

    def natural(self, base: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``base`` moved by a natural step ``eps`` (flat): ``base (1 + eps)`` or ``base + scale eps``."""
        e = eps.reshape(base.shape)
        return base * (1 + e) if self.transform == "log" else base + self.scale * e


class ParameterSet:
    """An ordered set of ``Parameter`` over one flat ``theta``; fixed values ride along.

    Parameters
    ----------
    parameters : sequence of Parameter
        The optimized parameters, in the order of ``theta``.
    fixed : dict name -> tensor, optional
        Values that are not optimized but are part of ``values`` (e.g. unfitted material
        parameters).
    """

    def __init__(self, parameters, fixed: dict | None = None):
        self.parameters = tuple(parameters)
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be distinct, got {names}")
        self.fixed = dict(fixed or {})
        self.slices = {}
        offset = 0
        for p in self.parameters:
            self.slices[p.name] = slice(offset, offset + p.size)
            offset += p.size
        self.size = offset

    @property
    def names(self) -> tuple:
        return tuple(p.name for p in self.parameters)

    def __getitem__(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)

    def __contains__(self, name: str) -> bool:
        return name in self.slices

    def zeros(self, like: torch.Tensor) -> torch.Tensor:
        """``theta = 0`` (every parameter at its start), on ``like``'s dtype and device."""
        return torch.zeros(self.size, dtype=like.dtype, device=like.device)

    def values(self, theta: torch.Tensor) -> dict:
        """Name -> value tensor (the optimized ones carry the graph to ``theta``), fixed ones too."""
        out = dict(self.fixed)
        for p in self.parameters:
            out[p.name] = p.value(theta[self.slices[p.name]])
        return out

    def floats(self, theta: torch.Tensor) -> dict:
        """Name -> float for every scalar value (arrays are left out)."""
        return {name: float(v.detach()) for name, v in self.values(theta.detach()).items()
                if isinstance(v, torch.Tensor) and v.numel() == 1}

    def rate(self, theta: torch.Tensor) -> torch.Tensor:
        """``d eps / d theta`` for every element of ``theta``, ``(size,)``."""
        return torch.cat([p.rate(theta[self.slices[p.name]]) for p in self.parameters])

    def max_steps(self, like: torch.Tensor) -> torch.Tensor:
        """Each element's ``max_step`` (natural units), ``(size,)``."""
        return torch.cat([torch.full((p.size,), p.max_step, dtype=like.dtype, device=like.device)
                          for p in self.parameters])
