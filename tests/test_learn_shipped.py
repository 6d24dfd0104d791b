"""The shipped U-Net weights: they load, say how they were made, predict unit vectors of the right
shape, and start the hybrid reconstruction."""

import json

import numpy as np

import napari_mmrecon as mm
from napari_mmrecon._sample_data import load_state
from napari_mmrecon.backend.learn.predict import load_unet, shipped_weights
from napari_mmrecon.backend.learn.unet import weights_bytes


def test_shipped_weights_load_lazily_and_record_how_they_were_made():
    path = shipped_weights()
    assert path.is_file() and path.stat().st_size < 20e6
    model, meta = load_unet()
    assert weights_bytes(model) < 20e6
    for key in ("recipe", "command", "seed", "git_commit", "metrics"):
        assert key in meta, key
    record = json.loads(path.with_suffix(".json").read_text())
    assert record["command"] and record["data"]["recipe"] == meta["recipe"]
    assert np.isfinite(record["heldout"]["val_angle_deg"])


def test_shipped_weights_find_the_bundled_skyrmion_from_its_strong_side_and_start_the_hybrid():
    """Not the training data: the bundled single skyrmion (64 x 64 cells of 1 nm, relaxed by the plain
    minimizer), H_z 10 nm above it (its strong side). The U-Net puts the skyrmion where it is, and
    the reconstruction started from it (``init="unet"``) converges to the texture."""
    m_true, grid, material = load_state("single_skyrmion")
    meas = mm.StrayFieldMeasurement(height=10e-9, side="top", component="z")
    image = meas.simulate(m_true, grid, material.Ms)
    m, info = mm.unet_predict(image, grid, meas, material=material, return_info=True)
    assert m.shape == m_true.shape and np.allclose(np.linalg.norm(m, axis=-1), 1.0, atol=1e-12)
    assert info.extrapolated == []
    q = mm.texture_metrics(m, m_true, grid)
    assert q.mz_correlation > 0.9 and q.matched == q.skyrmions_true == 1, q
    rec = mm.reconstruct_texture(image, grid, material, meas, init="unet", max_iter=10)
    assert rec.init == "unet" and rec.converged, rec.message
    q = mm.texture_metrics(rec.m, m_true, grid)
    assert q.angle_error < 3.0 and q.mz_correlation > 0.995, q
