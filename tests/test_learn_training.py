"""U-Net training: the loss falls on a fixed batch, the image term's gradient is right, runs resume
where they stopped (also from the previous checkpoint when the last is damaged), finished runs are
never trained over, and the job and command line report and refuse as the other commands do."""

import inspect
import threading

import numpy as np
import pytest
import torch

from learn_data import measurement, tiny_arrays, tiny_dataset, write_store
from napari_mmrecon import cli
from napari_mmrecon.backend.forward.measurement import simulate_image
from napari_mmrecon.backend.learn.training import (
    CHECKPOINT,
    LOSS_COLUMNS,
    PREVIOUS,
    WEIGHTS,
    LR_FLOOR,
    batch_loss,
    epoch_lr,
    load_samples,
    make_batch,
    read_run,
    train_unet,
)
from napari_mmrecon.backend.learn.predict import uniform_images
from napari_mmrecon.backend.learn.network_input import level
from napari_mmrecon.backend.learn.training_loss import TEXTURE_POWER_FLOOR, ForwardModel, image_misfit, texture_power
from napari_mmrecon.backend.learn.unet import UNet, load_checkpoint
from napari_mmrecon.backend.physics.grid import Grid
from napari_mmrecon.backend.runtime.threads import threads_for
from napari_mmrecon.workflows import jobs
from napari_mmrecon.workflows.options import OPTIONS
from napari_mmrecon.workflows.train import TrainOptions, train

SMALL = {"batch_size": 4, "base": 4, "depth": 2}
"""A network and batches small enough for a few epochs in a second."""


@pytest.fixture(scope="module")
def data():
    return tiny_dataset()


@pytest.fixture(scope="module")
def samples(data):
    return load_samples(data)


def forward_model(samples):
    return ForwardModel(samples.views, samples.manifest["mfm_tip"], samples.manifest["cantilever"])


def test_training_steps_lower_the_loss_on_a_fixed_batch(samples):
    torch.manual_seed(0)
    model = UNet(base=4, depth=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = make_batch(samples, np.arange(8), np.arange(8) % 4)
    forward = forward_model(samples)
    with threads_for(8 * 16 * 16), torch.no_grad():  # small problems on one thread, as train_unet runs them
        before, _ = batch_loss(model, batch, forward, 0.1, torch.device("cpu"))
    with threads_for(8 * 16 * 16):
        for _ in range(15):
            terms, _ = batch_loss(model, batch, forward, 0.1, torch.device("cpu"))
            optimizer.zero_grad()
            terms.total.backward()
            optimizer.step()
        with torch.no_grad():
            after, _ = batch_loss(model, batch, forward, 0.1, torch.device("cpu"))
    assert float(after.total) < 0.8 * float(before.total)
    assert float(after.angle) < float(before.angle) and float(after.image) < float(before.image)


def test_forward_model_is_simulate_image_and_reproduces_the_stored_images(samples):
    forward = forward_model(samples)
    m = torch.from_numpy(samples.m).double()
    for view in range(4):
        images = forward.images(m, samples.Ms, samples.dx, samples.thickness, samples.heights[:, view], [view] * 8)
        for b in (0, 5):
            grid = Grid(nx=16, ny=16, nz=1, dx=samples.dx[b], dy=samples.dx[b], dz=samples.thickness[b], device="cpu")
            expected = simulate_image(measurement(samples.views[view], samples.heights[b, view]), m[b][None], grid,
                                      samples.Ms[b])
            torch.testing.assert_close(images[b], expected, rtol=1e-10, atol=1e-12 * float(expected.abs().max()))
        stored = torch.from_numpy(samples.images[:, view]).double()
        assert float(image_misfit(images, stored)) < 1e-12


def test_the_uniform_film_input_is_the_same_in_training_and_in_prediction(samples):
    """``network_input``'s ``uniform`` channel: the training's cached ForwardModel images and
    ``predict.uniform_images`` are both the image of m = +z with Ms = 1 A/m in the view."""
    forward = forward_model(samples)
    for view in range(4):
        images = forward.uniform_images(samples.dx, samples.thickness, samples.heights[:, view], [view] * 8, (16, 16),
                                        torch.float64, "cpu")
        for b in (0, 5):
            grid = Grid(nx=16, ny=16, nz=1, dx=samples.dx[b], dy=samples.dx[b], dz=samples.thickness[b], device="cpu")
            meas = measurement(samples.views[view], samples.heights[b, view])
            up = torch.zeros((1, 16, 16, 3), dtype=torch.float64)
            up[..., 2] = 1.0
            expected = simulate_image(meas, up, grid, 1.0)
            torch.testing.assert_close(images[b], expected, rtol=1e-10, atol=1e-12 * float(expected.abs().max()))
            torch.testing.assert_close(uniform_images([meas], grid)[0], expected.float())
            assert float(expected.abs().max()) > 0


def test_the_image_term_is_measured_against_the_texture_s_own_image():
    """A weak-side image is mostly the film's edge field: the misfit is divided by the power of what
    is left once the uniform film's image (and a plane) is taken out, not by the whole image's."""
    generator = torch.Generator().manual_seed(3)
    uniform, texture = level(torch.randn(2, 1, 12, 12, generator=generator, dtype=torch.float64)).unbind(0)
    texture = texture - (texture * uniform).sum() / uniform.square().sum() * uniform
    target = 3.0 * uniform + texture + 4.0
    power = texture_power(target, 1e-3 * uniform)
    torch.testing.assert_close(power, texture.square().mean(dim=(-2, -1)))
    edges_only = texture_power(30.0 * uniform, uniform)
    torch.testing.assert_close(edges_only, TEXTURE_POWER_FLOOR * (30.0 * uniform).square().mean(dim=(-2, -1)))
    # missing the texture costs 1 against its own power, a few hundredths against the whole image's
    assert float(image_misfit(target - texture, target, power)) == pytest.approx(1.0)
    assert float(image_misfit(target - texture, target)) < 0.05


def test_the_learning_rate_falls_on_a_cosine_to_its_floor():
    rates = [epoch_lr(1e-3, epoch, 10) for epoch in range(10)]
    assert rates[0] == 1e-3 and rates[-1] == pytest.approx(LR_FLOOR * 1e-3, rel=1e-12)
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[4] > 0.5e-3 > rates[5]
    assert epoch_lr(1e-3, 0, 1) == 1e-3


def test_image_misfit_gradient_matches_finite_differences(samples):
    forward = forward_model(samples)
    generator = torch.Generator().manual_seed(3)
    target = torch.from_numpy(samples.images[:2, [0, 3]]).double().diagonal(dim1=0, dim2=1).permute(2, 0, 1)
    m = torch.nn.functional.normalize(torch.randn(2, 16, 16, 3, generator=generator, dtype=torch.float64), dim=-1)
    m = m[:, 4:12, 4:12].contiguous().requires_grad_()
    target = target[:, 4:12, 4:12]

    def misfit(m):
        return image_misfit(forward.images(m, samples.Ms[:2], samples.dx[:2], samples.thickness[:2],
                                           [samples.heights[0, 0], samples.heights[1, 3]], [0, 3]), target)

    assert torch.autograd.gradcheck(misfit, (m,), eps=1e-6, atol=1e-8, rtol=1e-5)


def stop_at(epoch):
    """A progress callback setting the returned event when ``epoch`` begins."""
    event = threading.Event()

    def progress(p):
        if p.epoch == epoch:
            event.set()

    return event, progress


def weights(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_a_stopped_run_resumes_where_it_stopped_and_ends_like_an_uninterrupted_one(data, tmp_path):
    whole = train_unet(data, tmp_path / "whole", epochs=2, **SMALL)
    cancel, progress = stop_at(2)
    stopped = train_unet(data, tmp_path / "run", epochs=2, cancel=cancel, progress=progress, **SMALL)
    assert stopped.cancelled and not stopped.finished and stopped.epochs == 1
    assert not (tmp_path / "run" / WEIGHTS).exists() and read_run(tmp_path / "run")["finished"] is False
    resumed = train_unet(data, tmp_path / "run", epochs=2, **SMALL)
    assert resumed.resumed_from == tmp_path / "run" / CHECKPOINT and resumed.finished
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    assert torch.equal(weights(resumed.model), weights(whole.model))
    lines = (tmp_path / "run" / "loss.csv").read_text().splitlines()
    assert lines[0] == ",".join(LOSS_COLUMNS) and len(lines) == 3
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0
    model, meta = load_checkpoint(tmp_path / "run" / WEIGHTS)
    assert torch.equal(weights(model), weights(resumed.model))
    assert meta["seed"] == 0 and meta["recipe"]["cells"] == 16 and meta["training_ranges"]["height_range"] == [2e-9,
                                                                                                                6e-9]
    assert set(meta["training_ranges"]) == {"Ms", "A", "D", "quality_factor", "thickness", "cell_size",
                                            "height_range", "field", "dmi_ratio"}
    assert meta["metrics"]["val_samples"] == 1 and set(meta["metrics"]["val_angle_deg_by_view"]) == {
        "top Hz h0", "top mfm h0", "bottom Hz h0", "bottom mfm h0"}


def test_a_damaged_checkpoint_falls_back_to_the_previous_one_or_is_refused_by_name(data, tmp_path):
    cancel, progress = stop_at(3)
    train_unet(data, tmp_path, epochs=3, cancel=cancel, progress=progress, **SMALL)
    checkpoint, previous = tmp_path / CHECKPOINT, tmp_path / PREVIOUS
    assert torch.load(checkpoint, weights_only=True)["epoch"] == 2
    assert torch.load(previous, weights_only=True)["epoch"] == 1
    checkpoint.write_bytes(checkpoint.read_bytes()[:500])
    cancel, progress = stop_at(3)
    with pytest.warns(UserWarning, match=f"{checkpoint} is truncated or corrupt.*resuming from {previous}"):
        resumed = train_unet(data, tmp_path, epochs=3, cancel=cancel, progress=progress, **SMALL)
    assert resumed.resumed_from == previous and [row["epoch"] for row in resumed.history] == [1, 2]
    for path in (checkpoint, previous):
        path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"{checkpoint} is truncated or corrupt"):
        train_unet(data, tmp_path, epochs=3, **SMALL)


def test_a_resumed_run_needs_its_settings(data, tmp_path):
    cancel, progress = stop_at(2)
    train_unet(data, tmp_path, epochs=2, cancel=cancel, progress=progress, **SMALL)
    with pytest.raises(ValueError, match=f"{tmp_path / CHECKPOINT} was written by a run with lr = 0.001, not 0.01"):
        train_unet(data, tmp_path, epochs=2, lr=1e-2, **SMALL)


def test_a_finished_run_is_not_trained_over(data, tmp_path):
    first = train_unet(data, tmp_path, epochs=1, **SMALL)
    stamp = (tmp_path / WEIGHTS).stat().st_mtime_ns
    with pytest.raises(ValueError, match=f"{tmp_path} holds a finished training run"):
        train_unet(data, tmp_path, epochs=2, **SMALL)
    assert (tmp_path / WEIGHTS).stat().st_mtime_ns == stamp
    again = train_unet(data, tmp_path, epochs=1, overwrite=True, seed=1, **SMALL)
    assert again.finished and again.resumed_from is None and [row["epoch"] for row in again.history] == [1]
    assert not torch.equal(weights(again.model), weights(first.model))


def test_options_defaults_agree_with_the_backend():
    backend = {name: p.default for name, p in inspect.signature(train_unet).parameters.items()}
    options = TrainOptions()
    for name, option in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("seed", "train_seed")):
        assert OPTIONS[option].default == backend[name] == getattr(options, name), name
    assert OPTIONS["train_device"].default == options.device == "auto" and backend["device"] is None
    assert OPTIONS["train_seed"].flag == "--seed" and OPTIONS["train_device"].flag == "--device"


def test_the_job_reports_every_batch(data, tmp_path, monkeypatch):
    monkeypatch.setattr("napari_mmrecon.workflows.train.train_unet",
                        lambda *args, **kwargs: train_unet(*args, **{**kwargs, "base": 4, "depth": 2}))
    seen = []
    result = jobs.run(train(data, tmp_path, TrainOptions(epochs=2, batch_size=4)), seen.append)
    assert result.finished and result.metrics["val_angle_deg"] > 0
    assert seen[0].text == "train: loading the dataset"
    assert seen[-1].value == seen[-1].maximum == 4 and "held-out loss" in seen[-1].text


def test_cli_refuses_bad_input_with_one_line_and_exit_code_2(tmp_path, capsys):
    assert cli.main(["train", "--data", str(tmp_path / "missing.zarr"), "-o", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip() == (f"mmrecon train: error: {tmp_path / 'missing.zarr'}: no napari-mmrecon "
                                               "synthetic dataset there")
    (tmp_path / "file").write_text("")
    assert cli.main(["train", "--data", str(tmp_path), "-o", str(tmp_path / "file")]) == 2
    assert "it is a file, not a folder" in capsys.readouterr().err
    assert cli.main(["train", "--data", str(tmp_path), "--epochs", "0"]) == 2
    assert "must be > 0, got epochs = 0" in capsys.readouterr().err
    (tmp_path / "done").mkdir()
    (tmp_path / "done" / "run.json").write_text('{"finished": true}')
    assert cli.main(["train", "--data", str(tmp_path / "missing.zarr"), "-o", str(tmp_path / "done")]) == 2
    assert capsys.readouterr().err.startswith(f"mmrecon train: error: {tmp_path / 'done'} holds a finished training "
                                              f"run ({tmp_path / 'done' / 'unet.pt'}): it is never trained over")


def test_cli_refuses_a_damaged_dataset_by_name(tmp_path, capsys):
    data = tmp_path / "data.zarr"
    write_store(data, tiny_arrays(n=4))
    chunk = next(path for path in (data / "images").rglob("*") if path.is_file() and path.name != "zarr.json")
    chunk.write_bytes(b"garbage")
    assert cli.main(["train", "--data", str(data), "-o", str(tmp_path / "run"), "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"mmrecon train: error: {data} is corrupt: reading it failed") and "\n" not in error


def test_help_names_the_flags_with_units_and_defaults(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["train", "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0 and "`" not in text
    for flag in ("--data DATA", "--epochs EPOCHS", "--batch-size BATCH_SIZE", "--lr LR", "--seed TRAIN_SEED",
                 "-o OUT, --out OUT", "--device {cpu,cuda,auto}", "--threads THREADS", "--quiet", "--overwrite"):
        assert flag in text, flag
    assert "(default 30)" in text and "AdamW learning rate (default 0.001)" in text
