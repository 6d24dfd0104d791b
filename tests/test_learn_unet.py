"""The U-Net and its input: shapes of any image size through padding, unit output, weight size,
checkpoints loadable with weights_only=True, the input channels and the D-sign mirror."""

import pytest
import torch

from napari_mmrecon.backend.learn.network_input import (
    CHANNELS,
    canonical_m,
    crop,
    d_sign,
    level,
    network_input,
    pad_to_multiple,
    predict_m,
    uniform_residual,
)
from napari_mmrecon.backend.learn.unet import UNet, checkpoint, load_checkpoint, weights_bytes


def inputs(b, ny, nx, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(b, ny, nx, generator=generator)
    uniform = torch.randn(b, ny, nx, generator=generator)
    return network_input(images, [2e-9] * b, [1e-9] * b, [1e-8] * b, [1.0] * b, [0.0] * b, [1.0] * b, uniform)


@pytest.mark.parametrize("ny, nx", [(37, 50), (13, 21), (16, 16)])
def test_any_image_size_gives_unit_vectors_of_its_shape(ny, nx):
    torch.manual_seed(0)
    model = UNet(base=4, depth=3)
    m = predict_m(model, inputs(2, ny, nx), [1.0, -1.0])
    assert m.shape == (2, ny, nx, 3) and m.dtype == torch.float32
    torch.testing.assert_close(m.norm(dim=-1), torch.ones(2, ny, nx))


def test_padding_is_undone_by_crop_and_the_network_refuses_other_sizes():
    x = torch.randn(1, 5, 13, 21)
    padded, padding = pad_to_multiple(x, 8)
    assert padded.shape[-2:] == (16, 24)
    assert torch.equal(crop(padded, padding), x)
    with pytest.raises(ValueError, match="13 x 21 pixels: both must be multiples of 8"):
        UNet(base=4)(x)
    with pytest.raises(ValueError, match="too small for the network"):
        pad_to_multiple(torch.randn(1, 5, 3, 3), 16)


def test_default_weights_are_small_and_the_config_rebuilds_the_network():
    model = UNet()
    assert model.config() == {"in_channels": CHANNELS, "out_channels": 3, "base": 8, "depth": 3}
    assert weights_bytes(model) < 20e6
    assert weights_bytes(UNet(**model.config())) == weights_bytes(model)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    torch.manual_seed(1)
    model = UNet(base=4, depth=2).eval()
    meta = {"seed": 3, "recipe": {"cells": 64, "height_range": [3e-9, 3e-8]}, "metrics": {"val_angle_deg": 12.5}}
    path = tmp_path / "unet.pt"
    torch.save(checkpoint(model, meta), path)
    raw = torch.load(path, weights_only=True)
    assert raw["config"] == model.config() and raw["meta"] == meta
    loaded, loaded_meta = load_checkpoint(path)
    assert loaded_meta == meta
    x = inputs(1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="unet.pt is not a readable U-Net checkpoint"):
        load_checkpoint(path)


def test_image_channel_ignores_gain_offset_and_tilt():
    generator = torch.Generator().manual_seed(2)
    image = torch.randn(1, 20, 24, generator=generator, dtype=torch.float64)
    y, x = torch.meshgrid(torch.arange(20.0), torch.arange(24.0), indexing="ij")
    changed = 1e5 * image + 3e5 + 2e3 * x - 5e3 * y
    uniform = torch.randn(1, 20, 24, generator=generator, dtype=torch.float64)
    a = network_input(image, [1e-9], [1e-9], [5e-9], [1.0], [1.0], [1.0], uniform)
    b = network_input(changed, [1e-9], [1e-9], [5e-9], [1.0], [1.0], [1.0], 1e-3 * uniform + 7.0)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    assert abs(float(a[0, 0].square().mean()) - 1) < 1e-5 and abs(float(a[0, 0].mean())) < 1e-6


def test_conditioning_channels_and_the_side_flip_for_negative_D():
    images = torch.randn(2, 8, 8)
    x = network_input(images, [2e-9, 2e-9], [1e-9, 1e-9], [8e-9, 8e-9], [1.0, 1.0], [0.0, 1.0],
                      d_sign(torch.tensor([3e-3, -3e-3])), torch.randn(2, 8, 8))
    assert x.shape == (2, CHANNELS, 8, 8)
    expected = torch.tensor([[torch.log(torch.tensor(4.0)), torch.log(torch.tensor(0.5)), 1.0, 0.0],
                             [torch.log(torch.tensor(4.0)), torch.log(torch.tensor(0.5)), -1.0, 1.0]])
    torch.testing.assert_close(x[:, 1:5, 3, 5], expected)
    assert torch.equal(x[:, 1:5].amin(dim=(-2, -1)), x[:, 1:5].amax(dim=(-2, -1)))
    assert torch.equal(x[:, 6].amin(dim=(-2, -1)), x[:, 6].amax(dim=(-2, -1)))
    zero = network_input(torch.zeros(1, 8, 8), [1e-9], [1e-9], [1e-9], [1.0], [0.0], [1.0], torch.zeros(1, 8, 8))
    assert torch.equal(zero[:, 0], torch.zeros(1, 8, 8)) and torch.equal(zero[:, 5], torch.zeros(1, 8, 8))


def test_the_uniform_film_is_taken_out_of_the_texture_channel_and_its_share_reported():
    generator = torch.Generator().manual_seed(5)
    uniform, texture = level(torch.randn(2, 1, 16, 16, generator=generator, dtype=torch.float64)).unbind(0)
    texture = texture - (texture * uniform).sum() / uniform.square().sum() * uniform  # orthogonal to it
    y, x = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    image = 40.0 * uniform + 3.0 * texture + 9.0 + 0.5 * x - 0.2 * y
    residual, share = uniform_residual(image, 1e-6 * uniform - 2.0)
    torch.testing.assert_close(residual, texture / texture.square().mean().sqrt())
    expected = 3.0 * texture.square().mean().sqrt() / level(image).square().mean().sqrt()
    torch.testing.assert_close(share, expected.reshape(1))
    assert 0.05 < float(share) < 0.2
    # a film without edges in view (uniform image constant): nothing to take out
    residual, share = uniform_residual(image, torch.full_like(image, 3.0))
    torch.testing.assert_close(residual, level(image) / level(image).square().mean().sqrt())
    assert float(share) == 1.0


def test_the_mirror_flips_in_plane_components_for_negative_D_only_and_is_its_own_inverse():
    m = torch.nn.functional.normalize(torch.randn(2, 4, 5, 3), dim=-1)
    sign = d_sign(torch.tensor([1e-3, -1e-3]))
    mirrored = canonical_m(m, sign)
    assert torch.equal(mirrored[0], m[0])
    assert torch.equal(mirrored[1], m[1] * torch.tensor([-1.0, -1.0, 1.0]))
    assert torch.equal(canonical_m(mirrored, sign), m)
