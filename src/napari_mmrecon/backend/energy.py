"""The total micromagnetic energy and effective field, and the public functions over them."""

from __future__ import annotations

import torch

from .arrays import batch_size, check_magnetization, check_vector_field, like_input, to_tensor
from .fused import FusedLinearField, fusable
from .grid import Grid, Material
from .terms import (
    DemagTerm,
    ExchangeField,
    InterfacialDMIField,
    Term,
    UniaxialAnisotropyField,
    ZeemanField,
)
from .threads import threads_for

TERM_NAMES = ("exchange", "dmi", "anisotropy", "zeeman", "demag")


class EnergyModel:
    """All energy terms of one film, with their coefficients prepared once.

    Parameters
    ----------
    grid : Grid
    material : Material
        Parameters may be torch tensors with ``requires_grad``; the model keeps the graph.
    external_field, bias_field : array-like, optional
        H in A/m: a 3-vector or a ``(nz, ny, nx, 3)`` map (or per state of a batch).
    batch : int, optional
        Batch size B if the model is used with ``m (B, nz, ny, nx, 3)`` and per-state parameters.
    terms : sequence of str, optional
        Subset of ``TERM_NAMES`` (default: all; terms whose parameter is exactly 0 are skipped).
    pinning : pinning.SkyrmionPinning, optional
        Holds skyrmions at given centres (a fit's model of a film whose skyrmion positions are set
        by defects); its energy appears as ``"pinning"`` in ``energies``.
    fuse : bool
        Fold the linear terms into one convolution where possible (``fused``; the default). Its
        kernel depends on A, Ku and D, so a model built only to differentiate the field with
        respect to them (once) is cheaper unfused.
    """

    def __init__(self, grid: Grid, material: Material, external_field=None, bias_field=None,
                 batch: int | None = None, terms=TERM_NAMES, pinning=None, fuse: bool = True):
        unknown = set(terms) - set(TERM_NAMES)
        if unknown:
            raise ValueError(f"unknown energy terms {sorted(unknown)}; expected a subset of {TERM_NAMES}")
        self.grid = grid
        self.material = material
        self.batch = batch
        self.term_names = tuple(terms)
        p = {name: material.parameter(name, grid, batch) for name in ("Ms", "A", "Ku", "D", "alpha")}
        self.parameters = p
        self.Ms = p["Ms"]
        self.alpha = p["alpha"]
        ext = check_vector_field(external_field, grid, batch, "external_field")
        bias = check_vector_field(bias_field, grid, batch, "bias_field")
        self.external_field, self.bias_field = ext, bias
        candidates = {
            "exchange": lambda: ExchangeField(grid, self.Ms, p["A"]),
            "dmi": lambda: InterfacialDMIField(grid, self.Ms, p["D"]),
            "anisotropy": lambda: UniaxialAnisotropyField(grid, self.Ms, p["Ku"], material.Ku_axis),
            "zeeman": lambda: ZeemanField(grid, self.Ms, ext, bias),
            "demag": lambda: DemagTerm(grid, self.Ms),
        }
        needed = {
            "exchange": _nonzero(p["A"]),
            "dmi": _nonzero(p["D"]),
            "anisotropy": _nonzero(p["Ku"]),
            "zeeman": ext is not None or bias is not None,
            "demag": True,
        }
        self.terms: list[Term] = [candidates[n]() for n in TERM_NAMES if n in terms and needed[n]]
        linear = {t.name for t in self.terms} - {"zeeman"}
        uniform = {"A": p["A"], "D": p["D"], "Ku": p["Ku"]}
        self.fused = None
        if fuse and linear and fusable(grid, self.Ms, uniform):
            self.fused = FusedLinearField(grid, self.Ms, p["A"], p["D"], p["Ku"], material.Ku_axis, linear)
        self.zeeman = next((t for t in self.terms if t.name == "zeeman"), None)
        self.pinning = pinning
        constant = None if self.zeeman is None else self.zeeman.h
        self._pinned_constant = None
        if pinning is not None:
            self._pinned_constant = pinning.constant_field(self.Ms, grid.vector_shape)
            constant = self._pinned_constant if constant is None else constant + self._pinned_constant
        self.constant_field = constant
        """The part of the field that does not depend on m (A/m; Zeeman and the pinning's constant
        part), or None: the field is ``H_lin(m) + constant_field`` with ``H_lin`` linear."""

    def field(self, m: torch.Tensor) -> torch.Tensor:
        """Total effective field (A/m), ``(..., nz, ny, nx, 3)``; 0 in vacuum cells.

        Uniform films take the fused path (``fused.FusedLinearField``); small problems run on one
        thread (``threads.threads_for``).
        """
        with threads_for(m.numel() // 3):
            if self.fused is not None:
                h = self.fused.field(m, self.constant_field)
            else:
                h = self.terms[0].field(m)
                for term in self.terms[1:]:
                    h = h + term.field(m)
                if self._pinned_constant is not None:
                    h = h + self._pinned_constant
            if self.pinning is not None:
                h = h + self.pinning.linear_field(m, self.Ms)
            return h

    def select(self, index) -> "EnergyModel":
        """The model of the states ``index`` (a sequence of ints) of a batch: per-state
        parameters and fields indexed, shared ones kept."""
        g = self.grid
        rows = torch.as_tensor(index, dtype=torch.long, device=g.device)
        changes = {}
        for name, value in self.parameters.items():
            if value.ndim == 4:  # per state: (B, 1, 1, 1) or a (B, nz, ny, nx) map
                picked = value[rows]
                changes[name] = picked if tuple(picked.shape[1:]) == g.shape else picked.reshape(-1)
        ext, bias = (None if f is None else f[rows] if f.ndim == 5 else f for f in (self.external_field, self.bias_field))
        return EnergyModel(g, self.material.replace(**changes), ext, bias, batch=len(rows), terms=self.term_names,
                           pinning=self.pinning)

    def energies(self, m: torch.Tensor) -> dict:
        """Energy per term and ``"total"`` (J); 0-d tensors, or ``(B,)`` for a batch.

        Every name of ``TERM_NAMES`` is present (terms not built contribute 0), and ``"pinning"``
        when the model has a pinning.
        """
        zero = torch.zeros(m.shape[:-4], dtype=m.dtype, device=m.device)
        out = {name: zero for name in TERM_NAMES}
        for term in self.terms:
            out[term.name] = term.energy(m)
        if self.pinning is not None:
            out["pinning"] = self.pinning.energy(m)
        out["total"] = sum(out[name] for name in out)
        return out


def _nonzero(p: torch.Tensor) -> bool:
    """Whether a parameter can contribute: non-zero somewhere, or a tensor that needs gradients."""
    return p.requires_grad or bool((p != 0).any())


def _prepare(m, grid: Grid, material: Material, external_field, bias_field):
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a napari_mmrecon Grid, got {type(grid).__name__}")
    if not isinstance(material, Material):
        raise ValueError(f"material must be a napari_mmrecon Material, got {type(material).__name__}")
    mt = to_tensor(m, grid, "m")
    batch = batch_size(mt, grid)
    model = EnergyModel(grid, material, external_field, bias_field, batch=batch)
    check_magnetization(mt, grid, model.Ms)
    return mt, model


def energy(m, grid: Grid, material: Material, external_field=None, bias_field=None) -> dict:
    """Micromagnetic energy of a magnetization state, per term.

    Parameters
    ----------
    m : array or tensor, ``(nz, ny, nx, 3)`` or ``(B, nz, ny, nx, 3)``
        Unit magnetization.
    grid : Grid
    material : Material
    external_field, bias_field : optional
        H in A/m, a 3-vector or a ``(nz, ny, nx, 3)`` map.

    Returns
    -------
    dict with keys ``"exchange", "dmi", "anisotropy", "zeeman", "demag", "total"``: energies in J,
    floats (numpy input) or 0-d tensors (tensor input); ``(B,)`` arrays/tensors for a batch.
    """
    mt, model = _prepare(m, grid, material, external_field, bias_field)
    out = model.energies(mt)
    if isinstance(m, torch.Tensor):
        return out
    return {k: (float(v) if v.ndim == 0 else v.detach().cpu().numpy()) for k, v in out.items()}


def effective_field(m, grid: Grid, material: Material, external_field=None, bias_field=None):
    """Total effective field of all terms (A/m), the same shape and kind as ``m``.

    See ``energy`` for the arguments. ``H_eff = -1 / (mu0 Ms V) dE/dm``; 0 in vacuum cells.
    """
    mt, model = _prepare(m, grid, material, external_field, bias_field)
    return like_input(model.field(mt), m)
