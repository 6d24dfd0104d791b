"""napari-mmrecon: magnetization textures and material parameters from stray-field and MFM images.

The public API (see DESIGN.md section 3) is re-exported here from ``backend`` and ``io``.
"""

from .backend import MU0, TERM_NAMES, EnergyModel, Grid, Material, effective_field, energy, textures

__version__ = "0.1.0"

__all__ = ["MU0", "TERM_NAMES", "EnergyModel", "Grid", "Material", "effective_field", "energy", "textures"]
