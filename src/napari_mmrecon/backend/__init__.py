"""The torch backend: physics only, never imports napari or Qt."""

from . import textures
from .energy import TERM_NAMES, EnergyModel, effective_field, energy
from .grid import MU0, Grid, Material

__all__ = ["MU0", "TERM_NAMES", "EnergyModel", "Grid", "Material", "effective_field", "energy", "textures"]
from .relax import GAMMA, LLGResult, RelaxInfo, llg, minimize, relax

__all__ += ["GAMMA", "LLGResult", "RelaxInfo", "llg", "minimize", "relax"]
from .analysis import skyrmion_radius

__all__ += ["skyrmion_radius"]
from .stray import StrayFieldMeasurement, stray_field, stray_field_projection
from .mfm import (
    Cantilever,
    MFMMeasurement,
    PointDipoleTip,
    PointMonopoleTip,
    add_noise,
    frequency_shift_from_phase,
    mfm_frequency_shift,
    phase_from_frequency_shift,
)

__all__ += ["Cantilever", "MFMMeasurement", "PointDipoleTip", "PointMonopoleTip", "StrayFieldMeasurement",
            "add_noise", "frequency_shift_from_phase", "mfm_frequency_shift", "phase_from_frequency_shift",
            "stray_field", "stray_field_projection"]
from .analysis import topological_charge
from .fitting import FitProgress, FitResult, fit_parameters

__all__ += ["FitProgress", "FitResult", "fit_parameters", "topological_charge"]
