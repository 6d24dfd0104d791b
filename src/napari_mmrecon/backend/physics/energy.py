"""The total micromagnetic energy and effective field, and the public functions over them.

The one-call functions (``energy``, ``effective_field``, and ``relax`` / ``llg`` in ``relax.py``)
keep what they build from the grid and material (``LinearTerms``) in a small per-thread cache
(``runtime.cache``, checked by value, so a material changed in place is never served stale): from
their second call with the same grid and material on they cost what a model built once costs.
"""

from __future__ import annotations

from dataclasses import fields

import torch

from ..runtime.arrays import batch_size, check_magnetization, check_vector_field, like_input, to_tensor
from ..runtime.cache import ValueCache
from ..runtime.threads import threads_for
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

TERM_NAMES = ("exchange", "dmi", "anisotropy", "zeeman", "demag")

MODEL_CACHE_SIZE = 4
"""Grid and material combinations whose ``LinearTerms`` the one-call functions keep, per thread."""


def check_terms(terms) -> tuple:
    """``terms`` as a tuple of names: ``None`` is all of ``TERM_NAMES``; else a non-empty subset."""
    if terms is None:
        return TERM_NAMES
    if isinstance(terms, str):
        raise ValueError(f"terms must be a sequence of names such as ('exchange', 'demag'), got the string {terms!r}")
    try:
        names = tuple(terms)
    except TypeError:
        raise ValueError(f"terms must be a sequence of names among {TERM_NAMES}, got {terms!r}") from None
    unknown = [n for n in names if n not in TERM_NAMES]
    if unknown:
        raise ValueError(f"unknown energy terms {unknown}; expected a subset of {TERM_NAMES}")
    if not names:
        raise ValueError(f"terms must name at least one of {TERM_NAMES}, got an empty sequence")
    return names


class LinearTerms:
    """The terms of a model that only the grid and material set: exchange, DMI, anisotropy and
    demag (linear in m), separately and, for a uniform film, fused into one convolution.

    Parameters
    ----------
    grid : Grid
    material : Material
    batch : int or None
        Batch size B for per-state parameters.
    terms : tuple of str
        Names among ``TERM_NAMES`` (``"zeeman"`` is ignored here; ``EnergyModel`` adds it).
    fuse : bool
        Build the fused field where possible (``fused.FusedLinearField``).
    """

    def __init__(self, grid: Grid, material: Material, batch: int | None, terms: tuple, fuse: bool):
        self.grid, self.batch, self.fuse = grid, batch, fuse
        p = {name: material.parameter(name, grid, batch) for name in ("Ms", "A", "Ku", "D", "alpha")}
        self.parameters = p
        Ms = p["Ms"]
        builders = {
            "exchange": (_nonzero(p["A"]), lambda: ExchangeField(grid, Ms, p["A"])),
            "dmi": (_nonzero(p["D"]), lambda: InterfacialDMIField(grid, Ms, p["D"])),
            "anisotropy": (_nonzero(p["Ku"]), lambda: UniaxialAnisotropyField(grid, Ms, p["Ku"], material.Ku_axis)),
            "demag": (True, lambda: DemagTerm(grid, Ms)),
        }
        self.terms: list[Term] = [build() for name, (needed, build) in builders.items() if name in terms and needed]
        names = {t.name for t in self.terms}
        self.fused = None
        if fuse and names and fusable(grid, Ms, {"A": p["A"], "D": p["D"], "Ku": p["Ku"]}):
            self.fused = FusedLinearField(grid, Ms, p["A"], p["D"], p["Ku"], material.Ku_axis, names)

    def release_buffers(self) -> None:
        """Free the convolutions' work buffers (they are allocated again on the next field)."""
        if self.fused is not None:
            self.fused.release_buffers()
        for term in self.terms:
            if isinstance(term, DemagTerm):
                term.release_buffers()


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
        Subset of ``TERM_NAMES``; ``None`` (the default) is all of them. Terms whose parameter is
        exactly 0 are skipped.
    pinning : pinning.SkyrmionPinning, optional
        Holds skyrmions at given centres (a fit's model of a film whose skyrmion positions are set
        by defects); its energy appears as ``"pinning"`` in ``energies``.
    fuse : bool
        Fold the linear terms into one convolution where possible (``fused``; the default). Its
        kernel depends on A, Ku and D, so a model built only to differentiate the field with
        respect to them (once) is cheaper unfused.
    """

    def __init__(self, grid: Grid, material: Material, external_field=None, bias_field=None,
                 batch: int | None = None, terms=None, pinning=None, fuse: bool = True):
        names = check_terms(terms)
        self._attach(LinearTerms(grid, material, batch, names, fuse), material, names, external_field, bias_field,
                     pinning)

    @classmethod
    def from_linear(cls, linear: LinearTerms, material: Material, terms: tuple, external_field=None,
                    bias_field=None, pinning=None) -> EnergyModel:
        """A model over already built ``linear`` terms (of ``material``; ``terms`` as checked by
        ``check_terms``), with the Zeeman term of the given fields."""
        model = cls.__new__(cls)
        model._attach(linear, material, terms, external_field, bias_field, pinning)
        return model

    def _attach(self, linear: LinearTerms, material: Material, terms: tuple, external_field, bias_field, pinning):
        """Set the model up from its linear terms, the applied fields and the pinning."""
        grid, batch = linear.grid, linear.batch
        self.linear = linear
        self.grid, self.material, self.batch, self.term_names = grid, material, batch, terms
        self.parameters = linear.parameters
        self.Ms = linear.parameters["Ms"]
        self.alpha = linear.parameters["alpha"]
        ext = check_vector_field(external_field, grid, batch, "external_field")
        bias = check_vector_field(bias_field, grid, batch, "bias_field")
        self.external_field, self.bias_field = ext, bias
        self.zeeman = None
        if "zeeman" in terms and (ext is not None or bias is not None):
            self.zeeman = ZeemanField(grid, self.Ms, ext, bias)
        built = linear.terms + ([self.zeeman] if self.zeeman is not None else [])
        self.terms: list[Term] = sorted(built, key=lambda t: TERM_NAMES.index(t.name))
        self.fused = linear.fused
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
                h = self._sum_of_terms(m)
            if self.pinning is not None:
                h = h + self.pinning.linear_field(m, self.Ms)
            return h

    def _sum_of_terms(self, m: torch.Tensor) -> torch.Tensor:
        """The unfused field (A/m): the terms' fields plus the pinning's constant part; zero
        when no term was built."""
        h = self.terms[0].field(m) if self.terms else torch.zeros_like(m)
        for term in self.terms[1:]:
            h = h + term.field(m)
        if self._pinned_constant is not None:
            h = h + self._pinned_constant
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
                           pinning=self.pinning, fuse=self.linear.fuse)

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


_LINEAR_TERMS = ValueCache(MODEL_CACHE_SIZE)


def cached_linear_terms(grid: Grid, material: Material, batch: int | None, terms: tuple) -> LinearTerms:
    """``LinearTerms(grid, material, batch, terms, fuse=True)``, kept for later calls with equal
    values (``runtime.cache``: the material's arrays are compared by content on every call)."""
    names = [f.name for f in fields(material)]

    def build(grid, batch, terms, *values):
        return LinearTerms(grid, material.replace(**dict(zip(names, values))), batch, terms, True)

    values = tuple(getattr(material, name) for name in names)
    return _LINEAR_TERMS.get((grid, batch, terms) + values, build)


def clear_model_cache() -> None:
    """Drop the models the one-call functions keep in this thread (and the memory they hold)."""
    _LINEAR_TERMS.clear()


def check_grid_material(grid, material) -> None:
    """``ValueError`` unless ``grid`` is a ``Grid`` and ``material`` a ``Material``."""
    if not isinstance(grid, Grid):
        raise ValueError(f"grid must be a napari_mmrecon Grid, got {type(grid).__name__}")
    if not isinstance(material, Material):
        raise ValueError(f"material must be a napari_mmrecon Material, got {type(material).__name__}")


def prepare(m, grid: Grid, material: Material, external_field=None, bias_field=None, terms=None, name: str = "m"):
    """The one-call functions' start: ``(m as a tensor, model, batch size or None)``.

    Checks the arguments (``name`` is ``m``'s name in messages) and builds the model over the
    cached ``LinearTerms`` of the grid and material (``cached_linear_terms``).
    """
    check_grid_material(grid, material)
    names = check_terms(terms)
    mt = to_tensor(m, grid, name)
    batch = batch_size(mt, grid, name)
    linear = cached_linear_terms(grid, material, batch, names)
    model = EnergyModel.from_linear(linear, material, names, external_field, bias_field)
    with threads_for(mt.numel() // 3):
        check_magnetization(mt, grid, model.Ms, name)
    return mt, model, batch


def energy(m, grid: Grid, material: Material, external_field=None, bias_field=None, terms=None) -> dict:
    """Micromagnetic energy of a magnetization state, per term.

    Parameters
    ----------
    m : array or tensor, ``(nz, ny, nx, 3)`` or ``(B, nz, ny, nx, 3)``
        Unit magnetization.
    grid : Grid
    material : Material
    external_field, bias_field : optional
        H in A/m, a 3-vector or a ``(nz, ny, nx, 3)`` map.
    terms : sequence of str, optional
        The terms to include, a subset of ``TERM_NAMES`` (default ``None``: all).

    Returns
    -------
    dict with keys ``"exchange", "dmi", "anisotropy", "zeeman", "demag", "total"``: energies in J,
    floats (numpy input) or 0-d tensors (tensor input); ``(B,)`` arrays/tensors for a batch. Terms
    left out are 0.
    """
    mt, model, _ = prepare(m, grid, material, external_field, bias_field, terms)
    out = model.energies(mt)
    if isinstance(m, torch.Tensor):
        return out
    return {k: (float(v) if v.ndim == 0 else v.detach().cpu().numpy()) for k, v in out.items()}


def effective_field(m, grid: Grid, material: Material, external_field=None, bias_field=None, terms=None):
    """Total effective field of the terms (A/m), the same shape and kind as ``m``.

    See ``energy`` for the arguments (``terms``: default all). ``H_eff = -1 / (mu0 Ms V) dE/dm``;
    0 in vacuum cells.
    """
    mt, model, _ = prepare(m, grid, material, external_field, bias_field, terms)
    return like_input(model.field(mt), m)
