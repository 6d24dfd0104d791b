"""Reconstruction of imperfect, measured-like images: an offset per scan line (``row_offsets``), and the
``"energy-relaxed"`` method for an image whose scale is off.

The targets are images of the bundled single skyrmion (a state relaxed by the plain minimizer,
``_sample_data``); the flaws are added here with a fixed seed.
"""

import threading

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon._sample_data import load_state
from napari_mmrecon.backend.inverse.held_equilibrium import HOLD_TOL

M_TRUE, GRID, MATERIAL = load_state("single_skyrmion")
MEASUREMENT = mm.StrayFieldMeasurement(height=10e-9, side="top", component="z")
IMAGE = mm.stray_field(M_TRUE, GRID, MATERIAL.Ms, height=10e-9, side="top")[..., 2]


def test_row_offsets_profile_out_scan_line_jumps():
    """Scan-line jumps (a random walk at 15 % of the rows, steps of 30 % of the image's standard
    deviation) ruin a plain fit; with an offset per row the texture comes back, and the offsets it
    reports are the jumps (up to one common constant) to within what a row's mean, lost with them,
    leaves unknown of the texture's image (3 % of its range here)."""
    rng = np.random.default_rng(1)
    jumps = np.cumsum(np.where(rng.random(GRID.ny) < 0.15, rng.normal(0.0, 0.3 * IMAGE.std(), GRID.ny), 0.0))
    target = IMAGE + jumps[:, None]
    plain = mm.reconstruct_texture(target, GRID, MATERIAL, MEASUREMENT, method="energy", max_iter=20)
    rows = mm.reconstruct_texture(target, GRID, MATERIAL, MEASUREMENT, method="energy", max_iter=20, row_offsets=True)
    q_plain, q_rows = mm.texture_metrics(plain.m, M_TRUE, GRID), mm.texture_metrics(rows.m, M_TRUE, GRID)
    assert rows.converged, rows.message
    assert q_rows.angle_error < 5.0 < 2 * 5.0 < q_plain.angle_error and q_rows.mz_correlation > 0.995
    # the simulated image carries the fitted offsets: simulated minus the texture's own image
    own = mm.stray_field(rows.m, GRID, MATERIAL.Ms, height=10e-9, side="top")[..., 2]
    offsets = (rows.simulated - own)[:, 0]
    assert np.allclose(rows.simulated - own, offsets[:, None])
    found = offsets - offsets.mean()
    assert np.abs(found - (jumps - jumps.mean())).max() < 0.05 * np.ptp(IMAGE)
    # the residual has no row means left, and its misfit is normalized by the image without them
    assert np.allclose(rows.residual.mean(axis=1), 0.0, atol=1e-9 * np.abs(target).max())
    signal = target - target.mean(axis=1, keepdims=True)
    assert np.isclose(rows.misfit, (rows.residual ** 2).mean() / (signal ** 2).mean())


def test_row_offsets_need_an_energy_method():
    with pytest.raises(ValueError, match="row_offsets .* takes method 'energy' or 'energy-relaxed'"):
        mm.reconstruct_texture(IMAGE, GRID, MATERIAL, MEASUREMENT, method="bias", row_offsets=True)


def test_energy_relaxed_mends_the_texture_of_an_image_whose_scale_is_off():
    """An image 15 % too strong (a tip or gain estimate 15 % low): the energy method bends the walls'
    in-plane part to make up the amplitude; relaxed at the material with its domains held, the
    texture is an equilibrium under the bias it reports and much nearer the truth."""
    target = 1.15 * IMAGE
    energy = mm.reconstruct_texture(target, GRID, MATERIAL, MEASUREMENT, method="energy", max_iter=20)
    relaxed = mm.reconstruct_texture(target, GRID, MATERIAL, MEASUREMENT, method="energy-relaxed", max_iter=20)
    q_energy, q_relaxed = mm.texture_metrics(energy.m, M_TRUE, GRID), mm.texture_metrics(relaxed.m, M_TRUE, GRID)
    assert q_relaxed.angle_error < 0.5 * q_energy.angle_error and q_relaxed.angle_error < 3.0
    assert abs(q_relaxed.charge - q_relaxed.charge_true) < 0.05 < abs(q_energy.charge - q_energy.charge_true)
    assert relaxed.method == "energy-relaxed" and "relaxed with its domains held" in relaxed.message
    # what it says it is: an equilibrium under its bias field (and the texture's own image)
    again = mm.relax(relaxed.m, GRID, MATERIAL, bias_field=relaxed.bias_field, tol=HOLD_TOL)
    assert np.degrees(np.arccos(np.clip((again * relaxed.m).sum(-1), -1, 1))).max() < 1.0
    own = mm.stray_field(relaxed.m, GRID, MATERIAL.Ms, height=10e-9, side="top")[..., 2]
    assert np.allclose(relaxed.simulated, own)


def test_energy_relaxed_reports_its_relaxation_and_cancel_stops_it():
    cancel, stages = threading.Event(), []

    def progress(snapshot):
        stages.append(snapshot.stage)
        if snapshot.stage == "relaxed, domains held":
            cancel.set()

    rec = mm.reconstruct_texture(1.15 * IMAGE, GRID, MATERIAL, MEASUREMENT, method="energy-relaxed", max_iter=20,
                                 progress=progress, cancel=cancel)
    assert stages[0].startswith("energy") and stages.count("relaxed, domains held") == 1
    assert rec.cancelled and rec.message.startswith("cancelled") and rec.bias_field is not None
    assert np.allclose(np.linalg.norm(rec.m, axis=-1), 1)
