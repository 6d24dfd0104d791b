"""File input/output: OVF vector fields and TIFF images with physical pixel size.

All functions work in numpy and SI units (metres); none returns torch tensors. Importing this
package imports no torch; the readers and writers import the backend on first use.
"""

from napari_mmrecon.io.ovf import OVFError, accepts_ovf, read_ovf, write_ovf
from napari_mmrecon.io.tiff import TiffError, accepts_tiff, read_tiff, write_tiff

__all__ = ["OVFError", "TiffError", "accepts_ovf", "accepts_tiff", "read_ovf", "read_tiff", "write_ovf", "write_tiff"]
