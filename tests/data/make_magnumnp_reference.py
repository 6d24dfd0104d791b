"""Generate reference data with the independent micromagnetic solver magnum.np.

This script is run by hand; the test-suite only reads the ``.npz`` files it
writes (it never imports magnum.np).

How to run
----------
Solver used: magnum.np 2.2.0 (PyPI ``magnumnp``) on torch 2.13.0 (CPU),
Python 3.11, float64 (magnum.np's default dtype).  Install it without letting
pip touch torch::

    pip install --no-deps magnumnp==2.2.0 torchdiffeq xitorch setproctitle tqdm
    python tests/data/make_magnumnp_reference.py            # all three problems
    python tests/data/make_magnumnp_reference.py skyrmion   # only one of them
    python tests/data/make_magnumnp_reference.py sp4
    python tests/data/make_magnumnp_reference.py film

magnum.np imports ``pyvista`` at import time, but only uses it for VTK file
I/O; if pyvista is not installed a dummy module is put in ``sys.modules``.
Run time on an idle 2-core machine (1 torch thread): about 100 s (skyrmion,
almost all of it the LLG relax) + about 50 s (SP4) + about 3 min (film).
The three .npz files are written next to this script.

Conventions of the stored arrays
--------------------------------
* numpy axis order: magnetization arrays have shape (nz, ny, nx, 3), the last
  axis holds the (x, y, z) components.  magnum.np uses (nx, ny, nz, 3), so the
  arrays are transposed with ``m.transpose(2, 1, 0, 3)``.
* SI units everywhere (m, s, J, A/m, J/m, J/m^2, J/m^3).
* Cell centres are at ((i + 1/2) dx, (j + 1/2) dy, (k + 1/2) dz).
* Parameters are stored as scalar (0-d) or small 1-d float arrays; text
  metadata as 0-d unicode arrays (loadable without allow_pickle).
* Wall times (``wall_*``, seconds) are for the runs alone, measured after a
  warm-up evaluation of every field term, i.e. without torch.compile cost.

1. magnumnp_skyrmion_64x64x1.npz -- isolated Neel skyrmion
-----------------------------------------------------------
Grid 64 x 64 x 1, cells 1 nm x 1 nm x 1 nm, open boundaries.
Ms = 5.8e5 A/m, A = 1.5e-11 J/m, Ku = 8e5 J/m^3 (axis z),
Di = 3e-3 J/m^2 (magnum.np ``InterfaceDMIField``; same sign convention as
mumax3 ``Dind``), no external field.  Field terms: DemagField,
ExchangeField, UniaxialAnisotropyField, InterfaceDMIField.

Start: theta(r) = 2 atan(sinh(R0/w) / sinh(r/w)) with R0 = 8 nm, w = 2 nm,
r measured from (x0, y0) = (32 nm, 32 nm); m_z = cos(theta) (core -1,
background +1), in-plane part m_r = s sin(theta) along the radial unit
vector, m_phi = 0 (Neel).  Both chiralities s = +1 and s = -1 were evaluated
with magnum.np: s = +1 (m_r = +sin(theta), i.e. in-plane moments point
radially *outwards* for a core pointing down) has the lower energy with
Di = +3e-3 J/m^2 (see E_start_plus / E_start_minus), so s = +1 is used.

Relaxations, both from the same start state:
* LLG: ``LLGSolver(terms, atol=1e-11, rtol=1e-11).relax(state,
  dm_tol=1e-3, maxiter=2000)``.  magnum.np's relax() integrates the LLG
  equation with alpha = 1.0 hard-coded (the material alpha is irrelevant; it
  is set to 1.0 here too), in chunks of 10 ps with the RKF45 solver, until
  max|dm/dt|/gamma < dm_tol (A/m).  The default dm_tol is 1e2 and the
  default RKF45 tolerance 1e-5; with the default RKF45 tolerance the
  integrator noise keeps max|dm/dt|/gamma at ~1e2 so the tolerances had to
  be tightened together.  ``iterations_llg`` = relax chunks,
  ``steps_llg`` = accepted RKF45 steps.
* ``MinimizerBB(terms).minimize(state, dm_tol=1e-3, maxiter=100000)``
  (Barzilai-Borwein energy minimizer, converged when max|m x (m x H)| <
  dm_tol A/m).  ``iterations_bb`` = BB iterations.

``max_torque_*`` = max over cells of |m x H_eff| (A/m) of the final states;
``norm_dev_*`` = max | |m| - 1 | (magnum.np's relax() does not renormalize
m, the RKF45 tolerance keeps this at ~1e-12); ``max_abs_diff_llg_bb`` =
max |m_llg - m_bb|.

Skyrmion radius: radius of the m_z = 0 contour, R = sqrt(area / pi), where
``area`` is the area enclosed by the m_z = 0 contour of the cell-centred m_z
field.  The contour is obtained with ``skimage.measure.find_contours(mz, 0)``
(marching squares, i.e. linear interpolation of m_z between neighbouring
cell centres), converted to physical coordinates ((col + 1/2) dx,
(row + 1/2) dy), and its area is computed with the shoelace formula.  Only
the closed contour enclosing the skyrmion core is used (there is exactly
one).  As a cross-check, ``radius_*_radial`` uses 3600 radial lines from the
core centre (centroid of (1 - m_z)/2), bilinear interpolation of m_z along
each line, linear interpolation of the first m_z = 0 crossing r(phi), and
area = 1/2 * integral of r(phi)^2 dphi.

Energies (J): ``E_llg``, ``E_bb`` total; ``E_<term>_llg`` / ``E_<term>_bb``
per term as given by magnum.np's ``term.E(state)``, terms demag, exchange,
anisotropy, dmi.  NOTE the anisotropy energy convention of magnum.np:
E_anis = -Ku * sum(V (m . u)^2) (zero of energy at m perpendicular to u), so
the uniform +z state has E_anis = -Ku * V_total (``E_anis_offset`` =
Ku * V_total = 3.2768e-18 J is to be added to get the
Ku * (1 - (m.u)^2) convention).  Exchange energy is zero for uniform m.

Result of this script (magnum.np 2.2.0, 1 torch thread):
* chirality: E_start(m_r = +sin) = -2.01200e-18 J < E_start(m_r = -sin)
  = -1.08081e-18 J  ->  m_r = +sin(theta);
* LLG relax: 48 relax iterations (10 ps each, alpha = 1), 7288 RKF45 steps,
  ~100 s; E = -2.3577413499e-18 J; R = 6.74866 nm (radial cross-check
  6.75122 nm); max |m x H| = 1.4e-3 A/m;
* BB minimizer: 536 iterations, ~1.3 s; E = -2.3577413499e-18 J;
  R = 6.74866 nm; max |m x H| = 1.2e-3 A/m;
* max |m_llg - m_bb| = 5e-9, radii agree to 3e-9 relative, energies to
  3e-11 relative.  Energy terms of the LLG state (J): demag 7.37622e-19,
  exchange 5.49562e-19, anisotropy -2.90962e-18 (magnum.np convention, see
  above), DMI -7.35301e-19.

2. magnumnp_sp4_coarse.npz -- muMAG standard problem 4, field 1, coarse grid
--------------------------------------------------------------------------
Permalloy film 500 nm x 125 nm x 3 nm, cells 5 nm x 5 nm x 3 nm
(100 x 25 x 1), Ms = 8e5 A/m, A = 1.3e-11 J/m, Ku = 0, exchange + demag.
s-state: m = (1, 0.25, 0.1) normalized, relaxed in zero field with
``LLGSolver(..., atol=1e-11, rtol=1e-11).relax(state, dm_tol=1e-3)``
(alpha = 1 hard-coded in relax), stored as ``m_start`` (1, 25, 100, 3).
Field 1: mu0 H = (-24.6, 4.3, 0.0) mT, H = (-24.6e-3, 4.3e-3, 0)/mu0 A/m
with mu0 = 4 pi 1e-7 (magnum.np's internal mu_0 is 1.2566370614e-6),
alpha = 0.02, gamma = 2.21276157e5 m/(A s) (magnum.np constant),
RKF45 with atol = rtol = 1e-8, integrated for 1 ns with output every 1 ps:
``t`` (1001,) s including t = 0 and ``m_mean`` (1001, 3); ``m_end`` is the
state at 1 ns.  From the sampled curve (cubic spline through the 1 ps
samples, scipy CubicSpline):
``t_mx_zero`` = first zero crossing of <m_x> (``t_mx_zero_linear`` the
plain linear interpolation between the two bracketing samples),
``t_my_min``, ``my_min`` = time and value of the first local minimum of
<m_y>.

Comparison with published solutions (filled in from the run):
* mumax3 repository, test/standardproblem4.mx3 (128 x 32 x 1 cells,
  3.90625 nm x 3.90625 nm x 3 nm): relaxed s-state
  <m> = (0.9669684, 0.1252732, 0) and after 1 ns of field 1
  <m> = (-0.9846124, 0.1260409, 0.0432712); stored as
  ``ref_mumax3_m_relaxed`` and ``ref_mumax3_m_1ns``.  (mumax3
  test/cert/standardproblem4.go expects the same numbers to 1e-3.)
* muMAG standard problem 4 results page (https://www.ctcms.nist.gov/~rdm/mumag.org.html
  -> std4; OOMMF solution by M. Donahue, 1 nm x 1 nm x 3 nm cells,
  https://www.ctcms.nist.gov/~rdm/std4/Donahue/stdprob4a.odt): first zero
  crossing of <m_x> for field 1 at 138.42 ps (the value 138.419 ps is what a
  third-party test-suite that vendors this NIST file asserts; the accompanying
  OOMMF snapshot is named stdprob4a-138ps.omf).  I could not open the NIST
  file itself here.  The published solutions overall cross at about
  0.13-0.14 ns.  Stored as ``ref_oommf_t_mx_zero``.  No published number
  for the first minimum of <m_y> was found.

Result of this script (magnum.np 2.2.0, 100 x 25 x 1 cells):
* relaxed s-state <m> = (0.967207, 0.124822, -4e-10)
  (mumax3 128 x 32: (0.966968, 0.125273, 0); difference 2.4e-4 / 4.5e-4);
* t_mx_zero = 138.615 ps (linear interpolation 138.615 ps), i.e. 0.2 ps
  (0.14 %) later than the OOMMF 1 nm reference 138.42 ps;
* first minimum of <m_y>: -0.49824 at t = 234.42 ps;
* <m>(1 ns) = (-0.98309, 0.13969, 0.04249) vs mumax3 (128 x 32)
  (-0.98461, 0.12604, 0.04327): the coarse grid is still close, the 0.014
  difference in <m_y> is within what the published solutions scatter after
  the reversal (the curves dephase after ~0.3 ns).

3. magnumnp_film_64x64x1.npz -- film of many Neel skyrmions
-----------------------------------------------------------
Grid 64 x 64 x 1, cells 2 nm x 2 nm x 1 nm (128 nm x 128 nm x 1 nm), open
boundaries.  Material and field terms exactly as in problem 1: Ms = 5.8e5
A/m, A = 1.5e-11 J/m, Ku = 8e5 J/m^3 (axis z), Di = 3e-3 J/m^2
(``InterfaceDMIField``), no external field; DemagField, ExchangeField,
UniaxialAnisotropyField, InterfaceDMIField.

Start: ``rng = np.random.default_rng(7)``.  Centres by rejection sampling:
each draw is ``rng.uniform(18e-9, 110e-9, size=2)`` -> (x, y) in m and is
accepted if it is at least 23 nm from every centre accepted so far; stop at
14 accepted centres (or after 100000 draws, keeping as many as fit; 14
fitted after 1824 draws).  Then, from the same rng,
``R = rng.uniform(7e-9, 9e-9, size=14)`` (radius of skyrmion i in the order
the centres were accepted) and w_i = R_i / 3.  Every cell (centre
((i + 1/2) dx, (j + 1/2) dy)) takes the profile of its nearest centre:
theta(r) = 2 atan(sinh(R/w) / sinh(r/w)), m_z = cos(theta) (core -1,
background +1), m_r = +sin(theta) along the radial unit vector from that
centre (the chirality found lower in energy in problem 1), m_phi = 0.
Stored: ``m_start``, ``centers_start`` (14, 2) (x, y) in m,
``radii_start`` (14,), ``widths_start``.

Why these numbers: a first version (centres in [10 nm, 118 nm]^2, >= 24 nm
apart, 12 requested, R in [6 nm, 10 nm]) kept only 7 skyrmions: the four
starting 10-12 nm from the edge touched it within 20 BB iterations and were
expelled, and the one with R = 6.37 nm collapsed (the survivors relaxed to
R = 6.3-6.7 nm; smaller starts collapse).  Hence the 18 nm margin
(no start touches the edge; every start is >= 18.1 nm from it) and
R in [7 nm, 9 nm].  The minimum distance is 23 nm, not 22 nm: with 22 nm
(14 fit after 1556 draws) two starts in the crowded middle, 22.1-22.3 nm
from their nearest neighbour, collapsed within 100 BB iterations and a
third by iteration 400 (11 left in a 4000-iteration trial); with 23 nm, 14
still fit and 12 survive.  w = R/2 instead of R/3 made no difference in
such trials.  The film seems to hold about 12 skyrmions at these
parameters: the relaxed ones are already squeezed to R = 4.7-5.8 nm (see
below).

Relaxation: ``MinimizerBB(terms).minimize(state, dm_tol=0.01,
maxiter=500000)`` (default tau_min = 1e-13, tau_max = 1e-5); converged when
max over cells and components of |m x (m x H_eff)| < 0.01 A/m.  This film
converges much faster than the first version (which needed 234550
iterations, 961 s, for dm_tol = 0.1 A/m): a dm_tol = 1 A/m run took 26739
iterations (118 s), so the tolerance was tightened to 0.01 A/m.  The BB
path does not depend on dm_tol (deterministic on 1 thread); from the log,
dm_max first < 1000 A/m at iteration 7908, < 10 A/m at 20526, < 1 A/m at
26739, < 0.1 A/m at 32646 (about 10x per 6000 iterations at the end).
The dm_tol = 1 A/m state differs from the stored one by at most 1.2e-3 in
m and by 7e-11 (relative) in energy.

Skyrmion count: regions of m_z < 0, ``scipy.ndimage.label(m_z < 0)``
(4-connectivity) -> ``skyrmions_start``, ``skyrmions_relaxed``; per region
(in label order) ``centers_relaxed`` (centroid of the closed m_z = 0
contour polygon), ``radii_relaxed`` (R = sqrt(area/pi) of that contour,
method as in problem 1; NaN if the region touches the edge and the contour
is open), ``radii_relaxed_cells`` = sqrt(n_cells dx dy / pi),
``on_edge_relaxed``; the same for the start state in the order of
``centers_start``: ``radii_start_contour``, ``radii_start_cells``,
``on_edge_start``.  ``Q_start``, ``Q_relaxed``: topological charge from
``napari_mmrecon.backend.physics.analysis.topological_charge`` (Berg-Luescher
lattice formula; core-down skyrmion = -1) of the (1, 64, 64, 3) arrays.
``max_torque`` = max |m x H_eff| (A/m) of the relaxed state, ``dm_max_bb`` =
the BB convergence quantity, energies ``E_start``, ``E_bb`` and
``E_<term>_start`` / ``E_<term>_bb`` as in problem 1 (same anisotropy
convention; ``E_anis_offset`` = Ku V_total = 1.31072e-17 J).

Result of this script (magnum.np 2.2.0, 1 torch thread):
* start: 14 skyrmions, R_i = 7.164, 8.565, 7.601, 7.838, 7.261, 7.662,
  7.267, 7.515, 8.157, 7.598, 8.335, 8.802, 8.153, 7.057 nm (contour radii
  of the start state 0.04-0.06 nm smaller); none touches the edge;
  nearest-neighbour distances 23.3-31.8 nm; E_start = -4.42934e-18 J,
  Q_start = -14.00;
* BB: 38724 iterations, 160 s (about 4 ms per iteration);
  max |m x H| = 0.011 A/m; max | |m| - 1 | = 4e-13;
* 12 skyrmions left (Q_relaxed = -11.954), none touching the edge.  Two
  collapsed in place early on (seen in a separate diagnostic run, not
  stored): the one starting at (109.9, 51.2) nm (smallest start radius
  7.06 nm, 18.1 nm from the edge, 23.5 nm from its neighbour) between BB
  iterations 95 and 100, and the one at (75.9, 19.7) nm (R = 8.15 nm,
  23.3 nm from its neighbour) between iterations 160 and 165; neither was
  pushed out.  The twelve spread out into a pattern that is symmetric under
  x <-> y and under inversion through the film centre: (26.6, 26.6),
  (50.7, 50.7), (77.3, 77.3), (101.4, 101.4) nm on the diagonal and
  (63.2, 21.6), (103.1, 24.9), (81.6, 46.4), (106.4, 64.8) nm with their
  mirror images (y, x);
* relaxed radii (m_z = 0 contour): 4.710 nm (2x, at (81.6, 46.4) and its
  mirror image), 5.050 nm (2x), 5.185 nm (4x), 5.491 nm (2x), 5.780 nm
  (2x) (sqrt(cells/pi): 4.65-5.97 nm), i.e. compressed by their mutual
  repulsion well below the 6.26-6.65 nm of the 7-skyrmion first version
  and the R = 6.749 nm of the isolated skyrmion of problem 1 (1 nm cells);
* E_bb = -6.7980732228e-18 J; terms (J): demag 2.77545e-18, exchange
  5.44957e-18, anisotropy -1.07417e-17 (magnum.np convention), DMI
  -4.28141e-18.
"""

import logging as _pylogging
import os
import sys
import time
import types

import numpy as np

try:  # magnum.np only needs pyvista for VTK I/O, which is not used here
    import pyvista  # noqa: F401
except ImportError:
    sys.modules["pyvista"] = types.ModuleType("pyvista")

import magnumnp as mnp
import torch
from scipy.interpolate import CubicSpline
from scipy.ndimage import label, map_coordinates
from skimage.measure import find_contours, points_in_poly

# One thread: the grids are small, and with 2 threads on a busy 2-core machine
# OpenMP oversubscription made runs ~30x slower.  Override with MNP_THREADS.
N_THREADS = int(os.environ.get("MNP_THREADS", "1"))
torch.set_num_threads(N_THREADS)

HERE = os.path.dirname(os.path.abspath(__file__))
# dm_tol (A/m) of the film relaxation; MNP_FILM_DM_TOL only for trial runs
FILM_DM_TOL = float(os.environ.get("MNP_FILM_DM_TOL", "1e-2"))
MU0 = 4e-7 * np.pi


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
class _LogCapture(_pylogging.Handler):
    """Collects magnum.np's log messages (to read iteration counts)."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())

    def clear(self):
        self.messages = []

    def last_iter(self, tag):
        """Iteration number of the last 'Successfully converged (iter=N' msg."""
        for msg in reversed(self.messages):
            if tag in msg and "converged (iter=" in msg:
                return int(msg.split("iter=")[1].split(",")[0])
        return -1


LOG = _LogCapture()
mnp.logging.logger.addHandler(LOG)


def to_numpy_order(m):
    """magnum.np (nx, ny, nz, 3) tensor -> numpy (nz, ny, nx, 3) float64."""
    return np.ascontiguousarray(
        m.detach().cpu().numpy().transpose(2, 1, 0, 3), dtype=np.float64)


def max_torque(state, terms):
    h = sum(term.h(state) for term in terms)
    return float(torch.linalg.norm(torch.linalg.cross(state.m, h), dim=-1).max())


def radius_contour(mz, dx, dy):
    """Radius of the m_z = 0 contour, R = sqrt(area/pi).

    mz: 2-d array (ny, nx), cell-centred.  The contour comes from
    skimage.measure.find_contours (marching squares = linear interpolation
    between cell centres); the area of the closed contour that encloses the
    core (minimum of m_z) is computed with the shoelace formula.
    """
    core = np.array(np.unravel_index(np.argmin(mz), mz.shape), dtype=float)
    areas = []
    for c in find_contours(mz, 0.0):
        if not np.allclose(c[0], c[-1]):
            continue  # open contour (touches the boundary)
        if not points_in_poly(core[None, :], c)[0]:
            continue
        x = (c[:, 1] + 0.5) * dx
        y = (c[:, 0] + 0.5) * dy
        areas.append(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))
    if len(areas) != 1:
        raise RuntimeError("expected exactly one closed m_z=0 contour around the core, got %d" % len(areas))
    return float(np.sqrt(areas[0] / np.pi))


def radius_radial(mz, dx, dy, nphi=3600, dr=0.01):
    """Cross-check: m_z = 0 radius from radial lines (bilinear interpolation)."""
    ny, nx = mz.shape
    w = (1.0 - mz) / 2.0
    jj, ii = np.meshgrid(np.arange(nx), np.arange(ny))
    xc = (w * jj).sum() / w.sum()  # core centre in index units (col)
    yc = (w * ii).sum() / w.sum()  # (row)
    phi = (np.arange(nphi) + 0.5) * 2 * np.pi / nphi
    r = np.arange(0.0, min(nx, ny) / 2.0 - 1.0, dr)  # in units of dx (dx == dy here)
    rad = np.empty(nphi)
    for k, p in enumerate(phi):
        cols = xc + r * np.cos(p) * (dx / dx)
        rows = yc + r * np.sin(p) * (dx / dy)
        v = map_coordinates(mz, [rows, cols], order=1, mode="nearest")
        i = np.nonzero((v[:-1] < 0) & (v[1:] >= 0))[0][0]
        rad[k] = (r[i] + dr * (0 - v[i]) / (v[i + 1] - v[i])) * dx
    area = 0.5 * np.sum(rad ** 2) * (2 * np.pi / nphi)
    return float(np.sqrt(area / np.pi))


def energies(state, terms, names):
    return {n: float(t.E(state)) for n, t in zip(names, terms)}


# --------------------------------------------------------------------------
# 1. skyrmion
# --------------------------------------------------------------------------
def run_skyrmion():
    t_script = time.perf_counter()
    nx, ny, nz = 64, 64, 1
    dx, dy, dz = 1e-9, 1e-9, 1e-9
    Ms, A, Ku, Di = 5.8e5, 1.5e-11, 8e5, 3e-3
    alpha = 1.0          # relax() uses alpha = 1.0 internally anyway
    R0, w = 8e-9, 2e-9
    x0, y0 = 32e-9, 32e-9
    llg_atol = llg_rtol = 1e-11
    llg_dm_tol, llg_maxiter = 1e-3, 2000
    bb_dm_tol, bb_maxiter = 1e-3, 100000

    mesh = mnp.Mesh((nx, ny, nz), (dx, dy, dz))
    state = mnp.State(mesh)
    state.material = {"Ms": Ms, "A": A, "Ku": Ku, "Ku_axis": [0., 0., 1.],
                      "Di": Di, "alpha": alpha}
    names = ["demag", "exchange", "anisotropy", "dmi"]
    terms = [mnp.DemagField(), mnp.ExchangeField(),
             mnp.UniaxialAnisotropyField(), mnp.InterfaceDMIField()]

    x = (torch.arange(nx) + 0.5) * dx - x0
    y = (torch.arange(ny) + 0.5) * dy - y0
    X, Y = torch.meshgrid(x, y, indexing="ij")
    r = torch.sqrt(X ** 2 + Y ** 2)
    phi = torch.atan2(Y, X)
    theta = 2 * torch.atan(np.sinh(R0 / w) / torch.sinh(r / w).clamp_min(1e-300))

    def start(sign):
        m = torch.stack([sign * torch.sin(theta) * torch.cos(phi),
                         sign * torch.sin(theta) * torch.sin(phi),
                         torch.cos(theta)], dim=-1)
        return m[:, :, None, :].clone()

    # warm-up (torch.compile) + chirality check
    t0 = time.perf_counter()
    E_start = {}
    for sign in (+1, -1):
        state.m = start(sign)
        E_start[sign] = sum(energies(state, terms, names).values())
    wall_warmup = time.perf_counter() - t0
    sign = +1 if E_start[+1] < E_start[-1] else -1
    print("E_start(+1) = %.10e J, E_start(-1) = %.10e J -> chirality m_r = %+d sin(theta)"
          % (E_start[+1], E_start[-1], sign))
    m0 = start(sign)
    m_start = to_numpy_order(m0)

    # LLG relax
    state.m = m0.clone()
    state._step = 0
    llg = mnp.LLGSolver(terms, atol=llg_atol, rtol=llg_rtol)
    LOG.clear()
    t0 = time.perf_counter()
    ok_llg = llg.relax(state, maxiter=llg_maxiter, dm_tol=llg_dm_tol)
    wall_llg = time.perf_counter() - t0
    it_llg = LOG.last_iter("[LLG] relax")
    steps_llg = state._step
    if not ok_llg:
        raise RuntimeError("LLG relax did not converge")
    m_llg = to_numpy_order(state.m)
    E_llg = energies(state, terms, names)
    torque_llg = max_torque(state, terms)

    # BB minimizer
    state.m = m0.clone()
    bb = mnp.MinimizerBB(terms)
    LOG.clear()
    t0 = time.perf_counter()
    ok_bb = bb.minimize(state, maxiter=bb_maxiter, dm_tol=bb_dm_tol)
    wall_bb = time.perf_counter() - t0
    it_bb = LOG.last_iter("[MinimizerBB]")
    if not ok_bb:
        raise RuntimeError("MinimizerBB did not converge")
    m_bb = to_numpy_order(state.m)
    E_bb = energies(state, terms, names)
    torque_bb = max_torque(state, terms)

    res = {}
    for tag, m in (("llg", m_llg), ("bb", m_bb), ("start", m_start)):
        mz = m[0, :, :, 2]
        res["radius_" + tag] = radius_contour(mz, dx, dy)
        res["radius_%s_radial" % tag] = radius_radial(mz, dx, dy)

    out = dict(
        m_start=m_start, m_llg=m_llg, m_bb=m_bb,
        E_llg=sum(E_llg.values()), E_bb=sum(E_bb.values()),
        E_start_plus=E_start[+1], E_start_minus=E_start[-1],
        chirality_sign=float(sign),
        iterations_llg=it_llg, steps_llg=steps_llg, iterations_bb=it_bb,
        max_torque_llg=torque_llg, max_torque_bb=torque_bb,
        norm_dev_llg=float(np.abs(np.linalg.norm(m_llg, axis=-1) - 1).max()),
        norm_dev_bb=float(np.abs(np.linalg.norm(m_bb, axis=-1) - 1).max()),
        max_abs_diff_llg_bb=float(np.abs(m_llg - m_bb).max()),
        wall_llg=wall_llg, wall_bb=wall_bb, wall_warmup=wall_warmup,
        nx=nx, ny=ny, nz=nz, dx=dx, dy=dy, dz=dz, Ms=Ms, A=A, Ku=Ku,
        Ku_axis=np.array([0., 0., 1.]), Di=Di, alpha=alpha, alpha_relax=1.0,
        R0_init=R0, w_init=w, x0=x0, y0=y0,
        llg_atol=llg_atol, llg_rtol=llg_rtol, llg_dm_tol=llg_dm_tol,
        bb_dm_tol=bb_dm_tol,
        E_anis_offset=Ku * nx * ny * nz * dx * dy * dz,
        gamma=mnp.constants.gamma, mu0_magnumnp=mnp.constants.mu_0,
        magnumnp_version=np.array(mnp.__version__),
        torch_version=np.array(torch.__version__),
        torch_num_threads=N_THREADS,
        chirality=np.array("m_r = %+d*sin(theta) (radial in-plane component; core m_z=-1)" % sign),
        radius_method=np.array("R=sqrt(area/pi), area enclosed by the m_z=0 contour "
                               "(skimage.measure.find_contours on cell-centred m_z, "
                               "shoelace formula); *_radial: 3600 radial lines, bilinear interp."),
        anisotropy_energy_convention=np.array("E_anis = -Ku*sum(V*(m.u)^2)"),
    )
    for n in names:
        out["E_%s_llg" % n] = E_llg[n]
        out["E_%s_bb" % n] = E_bb[n]
    out.update(res)
    out["wall_script"] = time.perf_counter() - t_script
    out = {k: np.asarray(v, dtype=np.float64) if not isinstance(v, np.ndarray) else v
           for k, v in out.items()}
    fn = os.path.join(HERE, "magnumnp_skyrmion_64x64x1.npz")
    np.savez_compressed(fn, **out)
    for k in sorted(out):
        if out[k].size <= 3:
            print("%-28s %s" % (k, out[k]))
    print("wrote", fn)


# --------------------------------------------------------------------------
# 2. standard problem 4
# --------------------------------------------------------------------------
def first_zero_crossing(t, y):
    i = np.nonzero((y[:-1] > 0) & (y[1:] <= 0))[0][0]
    t_lin = t[i] + (t[i + 1] - t[i]) * y[i] / (y[i] - y[i + 1])
    cs = CubicSpline(t, y)
    roots = [r for r in cs.roots(extrapolate=False) if t[i] <= r <= t[i + 1]]
    return float(roots[0]), float(t_lin)


def first_minimum(t, y):
    i = next(k for k in range(1, len(y) - 1) if y[k] < y[k - 1] and y[k] <= y[k + 1])
    cs = CubicSpline(t, y)
    d = cs.derivative()
    roots = [r for r in d.roots(extrapolate=False) if t[i - 1] <= r <= t[i + 1]]
    tm = min(roots, key=lambda r: cs(r))
    return float(tm), float(cs(tm)), float(t[i]), float(y[i])


def run_sp4():
    t_script = time.perf_counter()
    nx, ny, nz = 100, 25, 1
    dx, dy, dz = 5e-9, 5e-9, 3e-9
    Ms, A, alpha = 8e5, 1.3e-11, 0.02
    B1 = np.array([-24.6e-3, 4.3e-3, 0.0])  # mu0*H in T
    H1 = B1 / MU0
    relax_atol = relax_rtol = 1e-11
    relax_dm_tol, relax_maxiter = 1e-3, 5000
    atol = rtol = 1e-8
    dt_out, t_end = 1e-12, 1e-9

    mesh = mnp.Mesh((nx, ny, nz), (dx, dy, dz))
    state = mnp.State(mesh)
    state.material = {"Ms": Ms, "A": A, "alpha": alpha}
    demag, exchange = mnp.DemagField(), mnp.ExchangeField()
    m = torch.zeros((nx, ny, nz, 3))
    m[...] = torch.tensor([1.0, 0.25, 0.1])
    state.m = m / torch.linalg.norm(m, dim=-1, keepdim=True)

    t0 = time.perf_counter()
    demag.E(state), exchange.E(state)  # warm-up (demag kernel, torch.compile)
    wall_warmup = time.perf_counter() - t0

    # s-state
    state._step = 0
    relax = mnp.LLGSolver([demag, exchange], atol=relax_atol, rtol=relax_rtol)
    LOG.clear()
    t0 = time.perf_counter()
    ok = relax.relax(state, maxiter=relax_maxiter, dm_tol=relax_dm_tol)
    wall_relax = time.perf_counter() - t0
    if not ok:
        raise RuntimeError("SP4 relax did not converge")
    it_relax = LOG.last_iter("[LLG] relax")
    steps_relax = state._step
    m_start = to_numpy_order(state.m)
    m_relaxed_mean = m_start.reshape(-1, 3).mean(axis=0)
    E_relaxed = float(demag.E(state) + exchange.E(state))
    print("relaxed <m> =", m_relaxed_mean, "iterations", it_relax, "wall", wall_relax)

    # field 1
    external = mnp.ExternalField(torch.tensor(H1))
    llg = mnp.LLGSolver([demag, exchange, external], atol=atol, rtol=rtol)
    state.t = 0.0
    state._step = 0
    nt = int(round(t_end / dt_out)) + 1
    t = np.arange(nt) * dt_out
    m_mean = np.empty((nt, 3))
    m_mean[0] = state.m.mean(dim=(0, 1, 2)).numpy()
    t0 = time.perf_counter()
    for i in range(1, nt):
        llg.step(state, dt_out)
        m_mean[i] = state.m.mean(dim=(0, 1, 2)).numpy()
    wall_run = time.perf_counter() - t0
    steps_run = state._step
    m_end = to_numpy_order(state.m)

    t_mx0, t_mx0_lin = first_zero_crossing(t, m_mean[:, 0])
    t_mymin, my_min, t_mymin_s, my_min_s = first_minimum(t, m_mean[:, 1])
    print("t_mx_zero = %.5g s (linear %.5g), first min <my> = %.5f at %.5g s"
          % (t_mx0, t_mx0_lin, my_min, t_mymin))
    print("<m>(1 ns) =", m_mean[-1], "steps", steps_run, "wall", wall_run)

    out = dict(
        m_start=m_start, m_end=m_end, t=t, m_mean=m_mean,
        m_relaxed_mean=m_relaxed_mean, E_relaxed=E_relaxed,
        t_mx_zero=t_mx0, t_mx_zero_linear=t_mx0_lin,
        t_my_min=t_mymin, my_min=my_min,
        t_my_min_sample=t_mymin_s, my_min_sample=my_min_s,
        iterations_relax=it_relax, steps_relax=steps_relax, steps_run=steps_run,
        wall_relax=wall_relax, wall_run=wall_run, wall_warmup=wall_warmup,
        nx=nx, ny=ny, nz=nz, dx=dx, dy=dy, dz=dz, Ms=Ms, A=A, Ku=0.0,
        alpha=alpha, alpha_relax=1.0, m_init=np.array([1.0, 0.25, 0.1]),
        B_ext=B1, H_ext=H1, mu0=MU0, mu0_magnumnp=mnp.constants.mu_0,
        gamma=mnp.constants.gamma,
        relax_atol=relax_atol, relax_rtol=relax_rtol, relax_dm_tol=relax_dm_tol,
        atol=atol, rtol=rtol, dt_out=dt_out, t_end=t_end,
        ref_mumax3_m_relaxed=np.array([0.9669684171676636, 0.1252732127904892, 0.0]),
        ref_mumax3_m_1ns=np.array([-0.9846124053001404, 0.12604089081287384, 0.04327124357223511]),
        ref_source=np.array("mumax3 test/standardproblem4.mx3 (128x32x1 cells), expectv values"),
        ref_oommf_t_mx_zero=138.419e-12,
        ref_oommf_source=np.array("NIST muMAG std4, OOMMF (M. Donahue) 1 nm cells, "
                                  "https://www.ctcms.nist.gov/~rdm/std4/Donahue/stdprob4a.odt"),
        magnumnp_version=np.array(mnp.__version__),
        torch_version=np.array(torch.__version__),
        torch_num_threads=N_THREADS,
    )
    out["wall_script"] = time.perf_counter() - t_script
    out = {k: np.asarray(v, dtype=np.float64) if not isinstance(v, np.ndarray) else v
           for k, v in out.items()}
    fn = os.path.join(HERE, "magnumnp_sp4_coarse.npz")
    np.savez_compressed(fn, **out)
    for k in sorted(out):
        if out[k].size <= 3:
            print("%-28s %s" % (k, out[k]))
    print("wrote", fn)


# --------------------------------------------------------------------------
# 3. film of many skyrmions
# --------------------------------------------------------------------------
def draw_film_centres(rng, n_target, lo, hi, dmin, max_draws):
    """Rejection sampling of skyrmion centres (x, y) in [lo, hi]^2.

    One draw = ``rng.uniform(lo, hi, size=2)`` -> (x, y); it is accepted if
    it is at least ``dmin`` away from every centre accepted so far.  Stops
    when ``n_target`` centres are accepted or after ``max_draws`` draws.
    """
    centres, draws = [], 0
    while len(centres) < n_target and draws < max_draws:
        draws += 1
        c = rng.uniform(lo, hi, size=2)
        if all(np.hypot(*(c - q)) >= dmin for q in centres):
            centres.append(c)
    return np.array(centres).reshape(-1, 2), draws


def skyrmion_regions(mz, dx, dy):
    """Regions of m_z < 0 (scipy.ndimage.label, 4-connectivity) and their size.

    mz: 2-d array (ny, nx), cell-centred.  Returns (labels, n, centres, radii,
    radii_cells, on_edge): for every region (in label order) the centre
    (x, y) and radius R = sqrt(area/pi) of the closed m_z = 0 contour that
    encloses the region's minimum of m_z (marching squares + shoelace as in
    radius_contour; the centre is the centroid of that polygon; NaN if the
    contour is not closed, i.e. the region touches the boundary), the radius
    from the cell count, sqrt(n_cells dx dy / pi), and whether the region
    touches the edge of the grid.
    """
    labels, n = label(mz < 0)
    contours = [c for c in find_contours(mz, 0.0) if np.allclose(c[0], c[-1])]
    centres = np.full((n, 2), np.nan)
    radii = np.full(n, np.nan)
    radii_cells = np.empty(n)
    on_edge = np.zeros(n, dtype=bool)
    for k in range(1, n + 1):
        region = labels == k
        radii_cells[k - 1] = np.sqrt(region.sum() * dx * dy / np.pi)
        on_edge[k - 1] = (region[0].any() or region[-1].any()
                          or region[:, 0].any() or region[:, -1].any())
        core = np.unravel_index(np.argmin(np.where(region, mz, np.inf)), mz.shape)
        core = np.array(core, dtype=float)[None, :]
        hits = [c for c in contours if points_in_poly(core, c)[0]]
        if not hits:
            continue
        c = min(hits, key=lambda c: len(c))  # innermost contour around the core
        x = (c[:, 1] + 0.5) * dx
        y = (c[:, 0] + 0.5) * dy
        cross = x * np.roll(y, -1) - np.roll(x, -1) * y
        area = 0.5 * cross.sum()
        centres[k - 1] = [((x + np.roll(x, -1)) * cross).sum() / (6 * area),
                          ((y + np.roll(y, -1)) * cross).sum() / (6 * area)]
        radii[k - 1] = np.sqrt(abs(area) / np.pi)
    return labels, n, centres, radii, radii_cells, on_edge


def run_film():
    t_script = time.perf_counter()
    nx, ny, nz = 64, 64, 1
    dx, dy, dz = 2e-9, 2e-9, 1e-9
    Ms, A, Ku, Di = 5.8e5, 1.5e-11, 8e5, 3e-3
    alpha = 1.0
    seed, n_target, max_draws = 7, 14, 100000
    c_lo, c_hi, d_min = 18e-9, 110e-9, 23e-9
    R_lo, R_hi, w_over_R = 7e-9, 9e-9, 1.0 / 3.0
    bb_dm_tol, bb_maxiter = FILM_DM_TOL, 500000

    rng = np.random.default_rng(seed)
    centres, n_draws = draw_film_centres(rng, n_target, c_lo, c_hi, d_min, max_draws)
    n_sk = len(centres)
    radii = rng.uniform(R_lo, R_hi, size=n_sk)
    widths = radii * w_over_R
    if n_sk < n_target:
        print("only %d of %d skyrmion centres fit" % (n_sk, n_target))

    mesh = mnp.Mesh((nx, ny, nz), (dx, dy, dz))
    state = mnp.State(mesh)
    state.material = {"Ms": Ms, "A": A, "Ku": Ku, "Ku_axis": [0., 0., 1.],
                      "Di": Di, "alpha": alpha}
    names = ["demag", "exchange", "anisotropy", "dmi"]
    terms = [mnp.DemagField(), mnp.ExchangeField(),
             mnp.UniaxialAnisotropyField(), mnp.InterfaceDMIField()]

    # start state, built in magnum.np order (nx, ny): nearest centre's profile
    x = (np.arange(nx) + 0.5) * dx
    y = (np.arange(ny) + 0.5) * dy
    X, Y = np.meshgrid(x, y, indexing="ij")
    DX = X[..., None] - centres[:, 0]
    DY = Y[..., None] - centres[:, 1]
    dist = np.hypot(DX, DY)
    near = np.argmin(dist, axis=-1)
    pick = lambda a: np.take_along_axis(a, near[..., None], axis=-1)[..., 0]
    r, ddx, ddy = pick(dist), pick(DX), pick(DY)
    R, w = radii[near], widths[near]
    theta = 2 * np.arctan(np.sinh(R / w) / np.maximum(np.sinh(r / w), 1e-300))
    phi = np.arctan2(ddy, ddx)
    m0 = np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi),
                   np.cos(theta)], axis=-1)[:, :, None, :]
    m0 = torch.tensor(m0, dtype=torch.get_default_dtype())
    m_start = to_numpy_order(m0)

    # warm-up (torch.compile) = energies of the start state
    state.m = m0.clone()
    t0 = time.perf_counter()
    E_start = energies(state, terms, names)
    wall_warmup = time.perf_counter() - t0
    torque_start = max_torque(state, terms)

    # BB minimizer
    bb = mnp.MinimizerBB(terms)
    LOG.clear()
    t0 = time.perf_counter()
    ok_bb = bb.minimize(state, maxiter=bb_maxiter, dm_tol=bb_dm_tol)
    wall_bb = time.perf_counter() - t0
    it_bb = LOG.last_iter("[MinimizerBB]")
    if not ok_bb:
        raise RuntimeError("MinimizerBB did not converge")
    m_relaxed = to_numpy_order(state.m)
    E_bb = energies(state, terms, names)
    torque_bb = max_torque(state, terms)
    dm_max_bb = float(bb.dm(state, bb.h(state)).abs().max())
    LOG.clear()

    # skyrmions before / after
    lab_start, n_start_regions, _, r_start_m, r_start_cells, edge_start = skyrmion_regions(
        m_start[0, :, :, 2], dx, dy)
    _, n_relaxed, c_rel, r_rel, r_rel_cells, edge_rel = skyrmion_regions(
        m_relaxed[0, :, :, 2], dx, dy)
    # start radii measured like the relaxed ones, in the order of centers_start
    # (region = label of the cell that contains the centre)
    order = [lab_start[int(c[1] // dy), int(c[0] // dx)] - 1 for c in centres]
    Q_start, Q_relaxed = None, None
    try:
        from napari_mmrecon.backend.physics.analysis import topological_charge
        Q_start = topological_charge(m_start)
        Q_relaxed = topological_charge(m_relaxed)
    except ImportError as exc:  # pragma: no cover
        print("topological charge not computed:", exc)

    print("%d skyrmions drawn (%d draws), %d m_z<0 regions at start, %d after relaxation"
          % (n_sk, n_draws, n_start_regions, n_relaxed))
    print("BB: %d iterations, %.1f s, max|m x H| = %.3g A/m, E = %.10e J"
          % (it_bb, wall_bb, torque_bb, sum(E_bb.values())))
    print("start radii (nm):   ", np.round(radii * 1e9, 3))
    print("relaxed radii (nm): ", np.round(r_rel * 1e9, 3))
    print("relaxed radii from cell count (nm):", np.round(r_rel_cells * 1e9, 3))
    print("Q start / relaxed:", Q_start, Q_relaxed)

    out = dict(
        m_start=m_start, m_relaxed=m_relaxed,
        centers_start=centres, radii_start=radii, widths_start=widths,
        n_skyrmions_start=n_sk, n_draws=n_draws,
        radii_start_contour=r_start_m[order], radii_start_cells=r_start_cells[order],
        on_edge_start=edge_start[order].astype(np.float64),
        skyrmions_start=n_start_regions, skyrmions_relaxed=n_relaxed,
        centers_relaxed=c_rel, radii_relaxed=r_rel, radii_relaxed_cells=r_rel_cells,
        on_edge_relaxed=edge_rel.astype(np.float64),
        E_start=sum(E_start.values()), E_bb=sum(E_bb.values()),
        iterations_bb=it_bb, wall_bb=wall_bb, wall_warmup=wall_warmup,
        dm_tol=bb_dm_tol, bb_maxiter=bb_maxiter, bb_tau_min=1e-13, bb_tau_max=1e-5,
        dm_max_bb=dm_max_bb, max_torque_start=torque_start, max_torque=torque_bb,
        norm_dev_bb=float(np.abs(np.linalg.norm(m_relaxed, axis=-1) - 1).max()),
        nx=nx, ny=ny, nz=nz, dx=dx, dy=dy, dz=dz, Ms=Ms, A=A, Ku=Ku,
        Ku_axis=np.array([0., 0., 1.]), Di=Di, alpha=alpha,
        seed=seed, n_target=n_target, max_draws=max_draws,
        center_min=c_lo, center_max=c_hi, center_min_distance=d_min,
        radius_min=R_lo, radius_max=R_hi, w_over_R=w_over_R,
        E_anis_offset=Ku * nx * ny * nz * dx * dy * dz,
        gamma=mnp.constants.gamma, mu0_magnumnp=mnp.constants.mu_0,
        magnumnp_version=np.array(mnp.__version__),
        torch_version=np.array(torch.__version__),
        torch_num_threads=N_THREADS,
        chirality=np.array("m_r = +1*sin(theta) (radial in-plane component; core m_z=-1)"),
        radius_method=np.array("R=sqrt(area/pi), area enclosed by the closed m_z=0 contour "
                               "around each m_z<0 region (skimage.measure.find_contours on "
                               "cell-centred m_z, shoelace formula); *_cells: "
                               "sqrt(n_cells*dx*dy/pi); regions: scipy.ndimage.label(m_z<0)"),
        anisotropy_energy_convention=np.array("E_anis = -Ku*sum(V*(m.u)^2)"),
        solver=np.array("magnum.np %s MinimizerBB(terms).minimize(state, dm_tol=%g, "
                        "maxiter=%d) (defaults tau_min=1e-13, tau_max=1e-5), terms "
                        "DemagField, ExchangeField, UniaxialAnisotropyField, "
                        "InterfaceDMIField; torch %s CPU, float64, %d thread(s)"
                        % (mnp.__version__, bb_dm_tol, bb_maxiter, torch.__version__,
                           N_THREADS)),
        notes=np.array("Film of %d Neel skyrmions (numpy default_rng(%d): centres by rejection "
                       "in [%g nm, %g nm]^2, >= %g nm apart, then radii U[%g nm, %g nm], "
                       "w = R/3; each cell takes the profile of its nearest centre), relaxed "
                       "with magnum.np's Barzilai-Borwein minimizer until "
                       "max|m x (m x H)| < dm_tol (componentwise, A/m).  Arrays in numpy "
                       "order (nz, ny, nx, 3), SI units.  See make_magnumnp_reference.py."
                       % (n_sk, seed, c_lo * 1e9, c_hi * 1e9, d_min * 1e9, R_lo * 1e9,
                          R_hi * 1e9)),
    )
    if Q_start is not None:
        out["Q_start"], out["Q_relaxed"] = Q_start, Q_relaxed
    for n in names:
        out["E_%s_start" % n] = E_start[n]
        out["E_%s_bb" % n] = E_bb[n]
    out["wall_script"] = time.perf_counter() - t_script
    out = {k: np.asarray(v, dtype=np.float64) if not isinstance(v, np.ndarray) else v
           for k, v in out.items()}
    fn = os.path.join(HERE, "magnumnp_film_64x64x1.npz")
    np.savez_compressed(fn, **out)
    for k in sorted(out):
        if out[k].size <= 3:
            print("%-28s %s" % (k, out[k]))
    print("wrote", fn)


def main(argv=None):
    which = (sys.argv[1:] if argv is None else argv) or ["skyrmion", "sp4", "film"]
    unknown = set(which) - {"skyrmion", "sp4", "film"}
    if unknown:
        raise SystemExit("unknown problem(s): %s (choose from skyrmion, sp4, film)"
                         % ", ".join(sorted(unknown)))
    if "skyrmion" in which:
        run_skyrmion()
    if "sp4" in which:
        run_sp4()
    if "film" in which:
        run_film()


if __name__ == "__main__":
    main()
