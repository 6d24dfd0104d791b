"""napari-mmrecon: magnetization textures and material parameters from stray-field and MFM images.

The public API (../shared/DESIGN.md section 3) is re-exported here from ``backend`` and ``io``.
Each name is imported on first access (PEP 562), so that ``import napari_mmrecon`` and light
entry points such as the npe2 reader (``napari_mmrecon._reader``) do not import torch.
"""

import importlib

__version__ = "0.1.0"

__all__ = [
    "FieldSeriesResult", "FitProgress", "FitResult", "fit_field_series", "fit_parameters", "topological_charge",
    "ReconstructionProgress", "ReconstructionResult", "reconstruct_texture", "TextureMetrics", "texture_metrics",
    "TipCalibration", "calibrate_tip", "load_tip_calibration",
    "UNetExtrapolationWarning", "UNetPrediction", "unet_predict",
    "Cantilever", "MFMMeasurement", "PointDipoleMonopoleTip", "PointDipoleTip", "PointMonopoleTip",
    "StrayFieldMeasurement", "add_noise",
    "frequency_shift_from_phase", "mfm_frequency_shift", "phase_from_frequency_shift", "stray_field",
    "stray_field_projection", "force_gradient_from_frequency_shift", "force_gradient_from_phase",
    "frequency_shift_from_force_gradient", "phase_from_force_gradient", "PreparedImage", "prepare_image",
    "DEFAULT_TORQUE_TOL", "GAMMA", "MU0", "TERM_NAMES", "EnergyModel", "Grid", "LLGResult", "Material",
    "OVFError", "RelaxInfo", "TiffError", "effective_field", "energy", "llg", "minimize", "read_ovf",
    "read_tiff", "relax", "skyrmion_radius", "textures", "write_ovf", "write_tiff",
    "Multilayer", "effective_layer", "stack_grid",
]

_SOURCES = {
    "DEFAULT_TORQUE_TOL": ".backend.solvers.relax",
    **dict.fromkeys(("OVFError", "TiffError", "read_ovf", "read_tiff", "write_ovf", "write_tiff"), ".io"),
}
"""The module of each public name not taken from ``.backend``."""


def __getattr__(name: str):
    """The public ``name``, imported from its module on first access and kept here."""
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_SOURCES.get(name, ".backend"), __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The module's names, public names not yet imported included."""
    return sorted(set(globals()) | set(__all__))
