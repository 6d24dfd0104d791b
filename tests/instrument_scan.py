"""A Gwyddion scan of a known texture for the tests that take instrument files end to end.

Written by gwyfile's own writer as Gwyddion stores a scan (top row first, the lateral size in m,
the phase in deg, no lift height, no cantilever): the MFM phase of the bundled single skyrmion (64 x
64 cells of 1 nm) at ``LIFT`` with the default tip and cantilever, plus a constant ``offset`` (deg)
and noise, beside a flat "Height" channel.
"""

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon._sample_data import load_state

LIFT = 5e-9


def write_skyrmion_scan(path, offset: float = 0.0, noise: float = 0.0):
    """Write the scan to ``path``, its phase with Gaussian noise of ``noise`` times its standard
    deviation (seed 0); return ``(m_true, grid, material, phase)`` (phase without offset or noise)."""
    from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

    m, grid, material = load_state("single_skyrmion")
    phase = np.asarray(mm.MFMMeasurement(lift_height=LIFT, quantity="phase").simulate(m, grid, material.Ms))
    measured = phase + offset + np.random.default_rng(0).normal(0.0, noise * phase.std(), phase.shape)
    container = GwyContainer()
    for number, (title, values, unit) in enumerate((("MFM phase", measured, "deg"),
                                                   ("Height", np.zeros_like(phase), "m"))):
        container[f"/{number}/data"] = GwyDataField(np.flipud(values), xreal=grid.nx * grid.dx,
                                                    yreal=grid.ny * grid.dy, si_unit_xy=GwySIUnit(unitstr="m"),
                                                    si_unit_z=GwySIUnit(unitstr=unit))
        container[f"/{number}/data/title"] = title
    container.tofile(str(path))
    return m, grid, material, phase
