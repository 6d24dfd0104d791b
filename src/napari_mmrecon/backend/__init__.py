"""The torch backend: physics only, never imports napari or Qt."""

from . import textures
from .energy import TERM_NAMES, EnergyModel, effective_field, energy
from .grid import MU0, Grid, Material

__all__ = ["MU0", "TERM_NAMES", "EnergyModel", "Grid", "Material", "effective_field", "energy", "textures"]
from .relax import GAMMA, LLGResult, RelaxInfo, llg, minimize, relax

__all__ += ["GAMMA", "LLGResult", "RelaxInfo", "llg", "minimize", "relax"]
from .analysis import skyrmion_radius

__all__ += ["skyrmion_radius"]
