"""Relax-then-measure: the job behind the simulator widget, ``mmrecon simulate`` / ``demo`` and
the sample data. It only orchestrates backend calls (``relax``, ``stray_field``,
``mfm_frequency_shift``) and reports progress in the protocol of ``jobs``; SI units throughout.

    probe = Probe(heights=(10e-9, 20e-9), sides=("top",), outputs=("Hz", "frequency_shift"))
    result = jobs.run(simulate(m, grid, material, probe, Relaxation()))
    result.images[0].name, result.images[0].data          # "Hz top 10 nm", (ny, nx) A/m
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from .. import backend
from ..backend import Cantilever, Grid, Material, PointDipoleMonopoleTip, PointDipoleTip, PointMonopoleTip, RelaxInfo
from ..backend.forward.mfm import check_tip
from ..backend.solvers.relax import DEFAULT_TORQUE_TOL
from .jobs import Job, Partial, Progress, relay

TEXTURES = ("skyrmion", "skyrmion_lattice", "stripes", "labyrinth", "uniform", "random")
"""Starting-state presets of ``texture``."""

FIELD_COMPONENTS = {"Hx": 0, "Hy": 1, "Hz": 2, "|H|": None}
"""Stray-field outputs -> component index (None: the magnitude)."""

MFM_QUANTITIES = ("frequency_shift", "phase")
OUTPUTS = tuple(FIELD_COMPONENTS) + MFM_QUANTITIES
UNITS = {"Hx": "A/m", "Hy": "A/m", "Hz": "A/m", "|H|": "A/m", "frequency_shift": "Hz", "phase": "deg"}
LABELS = {"frequency_shift": "MFM df", "phase": "MFM phase"}
"""Short names of the MFM outputs in layer and file names."""
SIDES = ("top", "bottom")

MAX_CELLS = 1 << 20
"""Largest grid (cells) the simulator accepts: 1024 x 1024 x 1."""


def texture(name: str, grid: Grid, radius: float = 10e-9, spacing: float = 40e-9, seed: int = 0) -> np.ndarray:
    """A starting state ``(nz, ny, nx, 3)`` from a preset in ``TEXTURES``.

    ``radius`` (m) sizes the skyrmions; ``spacing`` (m) is the lattice spacing and the stripe and
    labyrinth period; ``seed`` for the random presets.
    """
    t = backend.textures
    builders = {
        "skyrmion": lambda: t.skyrmion(grid, radius=radius),
        "skyrmion_lattice": lambda: t.skyrmion_lattice(grid, spacing=spacing, radius=radius),
        "stripes": lambda: t.stripes(grid, period=spacing),
        "labyrinth": lambda: t.labyrinth(grid, period=spacing, seed=seed),
        "uniform": lambda: t.uniform(grid),
        "random": lambda: t.random(grid, seed=seed),
    }
    if name not in builders:
        raise ValueError(f"texture must be one of {', '.join(TEXTURES)}, got {name!r}")
    return builders[name]()


def check_grid_size(grid: Grid) -> Grid:
    """``grid`` if it has at most ``MAX_CELLS`` cells, else ``ValueError``."""
    cells = grid.nx * grid.ny * grid.nz
    if cells > MAX_CELLS:
        raise ValueError(f"grid of {grid.nx} x {grid.ny} x {grid.nz} = {cells} cells is too large "
                         f"(at most {MAX_CELLS} cells)")
    return grid


def film_material(m: np.ndarray, material: Material) -> Material:
    """``material`` whose scalar ``Ms`` is zeroed in the cells where ``m`` is a zero vector
    (vacuum, as OOMMF writes outside a shaped sample). Raises ``ValueError`` if ``Ms`` is not > 0
    anywhere."""
    Ms = np.asarray(material.Ms, dtype=float)
    if not np.any(Ms > 0):
        raise ValueError(f"Ms must be > 0 A/m (a film with Ms = 0 has no stray field), got {material.Ms!r}")
    empty = np.linalg.norm(m, axis=-1) == 0
    if Ms.ndim == 0 and empty.any():
        return material.replace(Ms=np.where(empty, 0.0, float(Ms)))
    return material


@dataclass(frozen=True)
class Probe:
    """What to measure: ``outputs`` (from ``OUTPUTS``) at each height (m, > 0) on each side.

    ``tip`` and ``cantilever`` are used by the MFM outputs only; the tip sits ``tip_height_offset``
    (m) above each nominal height (a calibrated tip's effective height offset,
    ``TipCalibration.height_offset``; the images keep their nominal heights).
    """

    heights: tuple
    sides: tuple = ("top",)
    outputs: tuple = ("Hz",)
    tip: PointDipoleTip | PointMonopoleTip | PointDipoleMonopoleTip = field(default_factory=PointDipoleTip)
    cantilever: Cantilever = field(default_factory=Cantilever)
    tip_height_offset: float = 0.0

    def __post_init__(self):
        heights = tuple(float(h) for h in np.atleast_1d(np.asarray(self.heights, dtype=float)))
        if not heights or not all(math.isfinite(h) and h > 0 for h in heights):
            raise ValueError(f"heights must be one or more finite lengths > 0 m, got {list(heights)}")
        object.__setattr__(self, "heights", heights)
        if not self.sides or any(s not in SIDES for s in self.sides):
            raise ValueError(f"sides must be 'top' and/or 'bottom', got {list(self.sides)}")
        if not self.outputs or any(o not in OUTPUTS for o in self.outputs):
            raise ValueError(f"outputs must be one or more of {', '.join(OUTPUTS)}, got {list(self.outputs)}")
        check_tip(self.tip)
        if not isinstance(self.cantilever, Cantilever):
            raise ValueError(f"cantilever must be a Cantilever, got {self.cantilever!r}")
        if not (math.isfinite(self.tip_height_offset) and min(heights) + self.tip_height_offset > 0):
            raise ValueError(f"the tip height offset {self.tip_height_offset!r} m puts the tip at or below the film "
                             f"at the height {min(heights):g} m")


@dataclass(frozen=True)
class Relaxation:
    """Relax before measuring: stop at ``max |m x H|/Ms < tol`` or after ``max_iter`` iterations,
    in a uniform external field ``external_field`` (H, A/m, 3-vector)."""

    tol: float = DEFAULT_TORQUE_TOL
    max_iter: int = 20000
    external_field: tuple = (0.0, 0.0, 0.0)


@dataclass
class SimulatedImage:
    """One output image ``data`` ``(ny, nx)`` of ``quantity`` in ``unit`` at ``height`` (m)."""

    quantity: str
    unit: str
    side: str
    height: float
    data: np.ndarray

    @property
    def name(self) -> str:
        """Display name, e.g. ``"Hz top 20 nm"`` or ``"MFM df bottom 15 nm"``."""
        return f"{LABELS.get(self.quantity, self.quantity)} {self.side} {self.height * 1e9:g} nm"

    @property
    def file_stem(self) -> str:
        """File-name stem, e.g. ``"Hz_top_20nm"``, ``"absH_top_20nm"``, ``"mfm_df_top_20nm"``."""
        stem = {"|H|": "absH", "frequency_shift": "mfm_df", "phase": "mfm_phase"}.get(self.quantity, self.quantity)
        return f"{stem}_{self.side}_{self.height * 1e9:g}nm"


@dataclass
class Relaxed:
    """A relaxed state (the ``Partial`` payload of ``simulate``)."""

    m: np.ndarray
    info: RelaxInfo


@dataclass
class Simulation:
    """What ``simulate`` returns: the state measured, its grid and material, the images, and the
    ``RelaxInfo`` if it was relaxed first."""

    m: np.ndarray
    grid: Grid
    material: Material
    probe: Probe
    images: list = field(default_factory=list)
    relax_info: RelaxInfo | None = None


def relax_progress(tol: float, stage: int = 0, stages: int = 1):
    """``describe`` for ``jobs.relay``: ``relax`` reports -> ``Progress`` in per mille of a job of
    ``stages`` equal stages, this being stage ``stage``. The fraction of the relaxation is
    ``log(torque0 / torque) / log(torque0 / tol)``, from the first torque reported to ``tol``."""
    first = {}

    def describe(iteration, torque, energy):
        torque = float(np.max(torque))
        start = first.setdefault("torque", max(torque, tol * 1.0001))
        fraction = 1.0 if torque <= tol else min(max(math.log(start / torque) / math.log(start / tol), 0.0), 1.0)
        return Progress(int(1000 * (stage + fraction) / stages), 1000,
                        f"relaxing: iteration {iteration}, max torque {torque:.1e} (stop below {tol:.0e})")

    return describe


def simulate(m, grid: Grid, material: Material, probe: Probe, relaxation: Relaxation | None = None,
             cancel: threading.Event | None = None) -> Job:
    """Job (see ``jobs``): optionally relax ``m``, then compute the outputs of ``probe``.

    Parameters
    ----------
    m : ndarray (nz, ny, nx, 3)
        Unit magnetization (zero vectors mark vacuum cells, see ``film_material``).
    grid : Grid
    material : Material
    probe : Probe
    relaxation : Relaxation, optional
        Relax first; the relaxed state is yielded as ``Partial(Relaxed(m, info))``.
    cancel : threading.Event, optional
        Stops the relaxation; the job then returns None.

    Yields ``Progress`` (per mille of the whole job) and returns a ``Simulation``.
    """
    cancel = threading.Event() if cancel is None else cancel
    check_grid_size(grid)
    material = film_material(np.asarray(m), material)
    measure_field = any(o in FIELD_COMPONENTS for o in probe.outputs)
    measure_mfm = any(o in MFM_QUANTITIES for o in probe.outputs)
    stages = (relaxation is not None) + len(probe.sides) * (measure_field + measure_mfm)
    stage = 0
    info = None
    if relaxation is not None:
        yield Progress(0, 1000, "relaxing")

        def call(report):
            return backend.relax(m, grid, material, external_field=list(relaxation.external_field),
                                 tol=relaxation.tol, max_iter=relaxation.max_iter, return_info=True,
                                 progress=report, cancel=cancel)

        m, info = yield from relay(call, relax_progress(relaxation.tol, 0, stages), cancel)
        if cancel.is_set():
            return None
        yield Partial(Relaxed(m, info))
        stage = 1
    result = Simulation(m, grid, material, probe, relax_info=info)
    for side in probe.sides:
        if measure_field:
            yield Progress(int(1000 * stage / stages), 1000, f"stray field, {side} side")
            H = backend.stray_field(m, grid, material.Ms, list(probe.heights), side=side)  # (nh, ny, nx, 3)
            for height, plane in zip(probe.heights, H):
                for quantity, component in FIELD_COMPONENTS.items():
                    if quantity in probe.outputs:
                        data = np.linalg.norm(plane, axis=-1) if component is None else plane[..., component]
                        result.images.append(SimulatedImage(quantity, UNITS[quantity], side, height, data))
            stage += 1
        if measure_mfm:
            yield Progress(int(1000 * stage / stages), 1000, f"MFM, {side} side")
            lifts = [height + probe.tip_height_offset for height in probe.heights]
            df = backend.mfm_frequency_shift(m, grid, material.Ms, lifts, side=side,
                                             tip=probe.tip, cantilever=probe.cantilever)  # (nh, ny, nx) Hz
            for height, plane in zip(probe.heights, df):
                if "frequency_shift" in probe.outputs:
                    result.images.append(SimulatedImage("frequency_shift", "Hz", side, height, plane))
                if "phase" in probe.outputs:
                    phase = backend.phase_from_frequency_shift(plane, probe.cantilever)
                    result.images.append(SimulatedImage("phase", "deg", side, height, phase))
            stage += 1
    yield Progress(1000, 1000, f"done: {len(result.images)} images")
    return result
