"""File input/output: OVF vector fields and TIFF images with physical pixel size.

All functions work in numpy and SI units (metres); none returns torch tensors.
"""

from napari_mmrecon.io.ovf import OVFError, read_ovf, write_ovf
from napari_mmrecon.io.tiff import TiffError, read_tiff, write_tiff

__all__ = ["OVFError", "TiffError", "read_ovf", "read_tiff", "write_ovf", "write_tiff"]
