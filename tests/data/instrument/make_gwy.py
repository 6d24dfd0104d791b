"""Write ``gwyfile_written.gwy`` with gwyfile's own writer (gwyfile 0.3.0, MIT): channels of known
values, units and physical size, for tests/test_instrument_readers_a.py to check exactly.

- ``/0/data`` "MFM phase": 24 x 32 (yres x xres) values ``0.25 * (32 * row + column) - 90`` deg,
  xreal = 3.2 um, yreal = 1.2 um (pixel 50 nm in y, 100 nm in x), si_unit_xy "m", si_unit_z "deg";
- ``/1/data`` "Height": ``1e-9 * (row - column)`` m, same size and units "m";
- ``/0/mask``: a mask field (not a channel; the reader must leave it out).

Run from the repository root: ``python tests/data/instrument/make_gwy.py``.
"""

from pathlib import Path

import numpy as np
from gwyfile.objects import GwyContainer, GwyDataField, GwySIUnit

YRES, XRES = 24, 32
XREAL, YREAL = 3.2e-6, 1.2e-6


def fields():
    row, column = np.mgrid[0:YRES, 0:XRES].astype(np.float64)
    return {"MFM phase": (0.25 * (XRES * row + column) - 90.0, "deg"), "Height": (1e-9 * (row - column), "m")}


def main():
    container = GwyContainer()
    for number, (title, (values, unit)) in enumerate(fields().items()):
        container[f"/{number}/data"] = GwyDataField(values, xreal=XREAL, yreal=YREAL,
                                                    si_unit_xy=GwySIUnit(unitstr="m"),
                                                    si_unit_z=GwySIUnit(unitstr=unit))
        container[f"/{number}/data/title"] = title
    container["/0/mask"] = GwyDataField(np.zeros((YRES, XRES)), xreal=XREAL, yreal=YREAL)
    container.tofile(str(Path(__file__).resolve().parent / "gwyfile_written.gwy"))


if __name__ == "__main__":
    main()
