"""Write the two synthetic OVF test files of this folder (see ORIGINS.md).

They stand in for two real files whose licence (GPL-3.0) does not fit this project: each has
the header layout of the program that writes such files (mumax3's OVF 2.0 ``Binary 4``
writer; OOMMF mmSolve's OVF 1.0 ``Text`` writer) and data made here. The data come from
integer arithmetic and correctly rounded float operations only, so the bytes are the same on
every platform; ``tests/test_io_ovf.py`` checks that this script reproduces the files.

Usage: ``python tests/data/ovf/make_synthetic_ovf.py [folder]`` (default: this folder).
"""

from __future__ import annotations

import math
import struct
import sys
from pathlib import Path

GEOMETRY_FILE = "synthetic_mumax3-layout_ovf2_bin4_geom_scalar_40x25x20.ovf"
SPINS_FILE = "synthetic_mmsolve-layout_ovf1_text_m_25x10x1.omf"

DOME_SEMI_AXES = (36, 22, 28)
"""Semi-axes (a, b, c) of the geometry's half-ellipsoid dome along x, y, z, in half cells
(2.5 nm); its base centre is at (40, 25, 0) half cells, the middle of the film's bottom."""

MUMAX3_HEADER = """\
# OOMMF OVF 2.0
# Segment count: 1
# Begin: Segment
# Begin: Header
# Title: geom
# meshtype: rectangular
# meshunit: m
# xmin: 0
# ymin: 0
# zmin: 0
# xmax: 2e-07
# ymax: 1.25e-07
# zmax: 1e-07
# valuedim: 1
# valuelabels: geom
# valueunits: 1
# Desc: Total simulation time:  0  s
# xbase: 2.5e-09
# ybase: 2.5e-09
# zbase: 2.5e-09
# xnodes: 40
# ynodes: 25
# znodes: 20
# xstepsize: 5e-09
# ystepsize: 5e-09
# zstepsize: 5e-09
# End: Header
# Begin: Data Binary 4
"""

MMSOLVE_HEADER = """\
# OOMMF: rectangular mesh v1.0
# Segment count: 1
# Begin: Segment
# Begin: Header
# Title: synthetic.field0000-pass00000.omf
# Desc: Field Index: 0
# Desc: Applied field (T): 0 0 0
# Desc: Iteration: 0
# Desc: Time (s): 0
# Desc: |m x h|: 0.5
# Desc: User Comment:
# meshtype: rectangular
# meshunit: m
# xbase: 1e-08
# ybase: 1e-08
# zbase: 1e-08
# xstepsize: 2e-08
# ystepsize: 2e-08
# zstepsize: 2e-08
# xnodes: 25
# ynodes: 10
# znodes: 1
# xmin: 0
# ymin: 0
# zmin: 0
# xmax: 5e-07
# ymax: 2e-07
# zmax: 2e-08
# valueunit: A/m
# valuemultiplier: 800000
# ValueRangeMinMag: 1e-08
# ValueRangeMaxMag: 1
# End: Header
# Begin: Data Text
"""


def dome_mask() -> list[float]:
    """1.0 inside the dome, 0.0 outside, for the 40 x 25 x 20 cells in OVF order (x fastest)."""
    a, b, c = DOME_SEMI_AXES
    values = []
    for k in range(20):
        for j in range(25):
            for i in range(40):
                x, y, z = 2 * i + 1 - 40, 2 * j + 1 - 25, 2 * k + 1
                inside = (x * b * c) ** 2 + (y * a * c) ** 2 + (z * a * b) ** 2 <= (a * b * c) ** 2
                values.append(1.0 if inside else 0.0)
    return values


def unit_vectors(count: int) -> list[list[float]]:
    """``count`` unit vectors from integer triples of a fixed linear congruential sequence."""
    state, vectors = 12345, []
    while len(vectors) < count:
        triple = []
        for _ in range(3):
            state = (1103515245 * state + 12345) % 2**31
            triple.append(state % 201 - 100)
        norm = math.sqrt(sum(component * component for component in triple))
        if norm > 0:
            vectors.append([component / norm for component in triple])
    return vectors


def geometry_bytes() -> bytes:
    """The mumax3-layout scalar geometry file: little-endian float32 after the check value."""
    values = [1234567.0] + dome_mask()
    data = struct.pack(f"<{len(values)}f", *values)
    return MUMAX3_HEADER.encode("ascii") + data + b"# End: Data Binary 4\n# End: Segment\n"


def spins_bytes() -> bytes:
    """The mmSolve-layout OVF 1.0 text file: one unit vector per line, 17 significant digits."""
    lines = [" ".join(f"{component: .17g}" for component in vector) for vector in unit_vectors(25 * 10)]
    body = "\n".join(lines) + "\n# End: Data Text\n# End: Segment\n"
    return MMSOLVE_HEADER.encode("ascii") + body.encode("ascii")


def write_all(folder: Path) -> None:
    """Write both files into ``folder``."""
    (folder / GEOMETRY_FILE).write_bytes(geometry_bytes())
    (folder / SPINS_FILE).write_bytes(spins_bytes())


if __name__ == "__main__":
    write_all(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
