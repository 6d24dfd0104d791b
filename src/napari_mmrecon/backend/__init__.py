"""The torch backend, never importing napari or Qt, in rooms by job.

``runtime`` (tensor plumbing) <- ``physics`` (the model) <- ``solvers`` (minimization, LLG,
equilibria) <- ``forward`` (stray field, MFM) <- ``learn`` (the U-Net, its synthetic data and
training) <- ``inverse`` (fits, reconstruction and studies); ``measured``
prepares measured images. Each room imports only from the rooms before it. The public functions
are re-exported here and at the package top (``napari_mmrecon``).
"""

from .forward.mfm import (
    Cantilever,
    MFMMeasurement,
    PointDipoleMonopoleTip,
    PointDipoleTip,
    PointMonopoleTip,
    add_noise,
    force_gradient_from_frequency_shift,
    force_gradient_from_phase,
    frequency_shift_from_force_gradient,
    frequency_shift_from_phase,
    mfm_frequency_shift,
    phase_from_force_gradient,
    phase_from_frequency_shift,
)
from .forward.stray import StrayFieldMeasurement, stray_field, stray_field_projection
from .measured.preparation import PreparedImage, prepare_image
from .learn.predict import UNetExtrapolationWarning, UNetPrediction, unet_predict
from .inverse.field_series import FieldSeriesResult, fit_field_series
from .inverse.parameter_fit import FitProgress, FitResult, fit_parameters
from .inverse.reconstruction import ReconstructionProgress, ReconstructionResult, reconstruct_texture
from .inverse.texture_metrics import TextureMetrics, texture_metrics
from .inverse.tip_calibration import TipCalibration, calibrate_tip, load_tip_calibration
from .physics import textures
from .physics.analysis import skyrmion_radius, topological_charge
from .physics.energy import TERM_NAMES, EnergyModel, effective_field, energy
from .physics.grid import MU0, Grid, Material
from .physics.multilayer import Multilayer, effective_layer, stack_grid
from .solvers.relax import GAMMA, LLGResult, RelaxInfo, llg, minimize, relax

__all__ = [
    "Cantilever", "MFMMeasurement", "PointDipoleMonopoleTip", "PointDipoleTip", "PointMonopoleTip", "add_noise",
    "frequency_shift_from_phase", "mfm_frequency_shift", "phase_from_frequency_shift",
    "force_gradient_from_frequency_shift", "force_gradient_from_phase", "frequency_shift_from_force_gradient",
    "phase_from_force_gradient", "PreparedImage", "prepare_image",
    "StrayFieldMeasurement", "stray_field", "stray_field_projection",
    "UNetExtrapolationWarning", "UNetPrediction", "unet_predict",
    "FieldSeriesResult", "FitProgress", "FitResult", "fit_field_series", "fit_parameters",
    "ReconstructionProgress", "ReconstructionResult", "reconstruct_texture", "TextureMetrics", "texture_metrics",
    "TipCalibration", "calibrate_tip", "load_tip_calibration",
    "textures", "skyrmion_radius", "topological_charge",
    "TERM_NAMES", "EnergyModel", "effective_field", "energy", "MU0", "Grid", "Material",
    "Multilayer", "effective_layer", "stack_grid",
    "GAMMA", "LLGResult", "RelaxInfo", "llg", "minimize", "relax",
]
