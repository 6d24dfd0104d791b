"""napari-mmrecon: magnetization textures and material parameters from stray-field and MFM images.

The public API (../shared/DESIGN.md section 3) is re-exported here from ``backend`` and ``io``.
"""

from .backend import (
    GAMMA,
    FitProgress,
    FitResult,
    fit_parameters,
    topological_charge,
    Cantilever,
    MFMMeasurement,
    PointDipoleTip,
    PointMonopoleTip,
    StrayFieldMeasurement,
    add_noise,
    frequency_shift_from_phase,
    mfm_frequency_shift,
    phase_from_frequency_shift,
    stray_field,
    stray_field_projection,
    MU0,
    TERM_NAMES,
    EnergyModel,
    Grid,
    LLGResult,
    Material,
    RelaxInfo,
    effective_field,
    energy,
    llg,
    minimize,
    relax,
    skyrmion_radius,
    textures,
)
from .backend.relax import DEFAULT_TORQUE_TOL
from .io import OVFError, TiffError, read_ovf, read_tiff, write_ovf, write_tiff

__version__ = "0.1.0"

__all__ = [
    "FitProgress", "FitResult", "fit_parameters", "topological_charge",
    "Cantilever", "MFMMeasurement", "PointDipoleTip", "PointMonopoleTip", "StrayFieldMeasurement", "add_noise",
    "frequency_shift_from_phase", "mfm_frequency_shift", "phase_from_frequency_shift", "stray_field",
    "stray_field_projection",
    "DEFAULT_TORQUE_TOL", "GAMMA", "MU0", "TERM_NAMES", "EnergyModel", "Grid", "LLGResult", "Material",
    "OVFError", "RelaxInfo", "TiffError", "effective_field", "energy", "llg", "minimize", "read_ovf",
    "read_tiff", "relax", "skyrmion_radius", "textures", "write_ovf", "write_tiff",
]
