"""Training-time augmentation of dataset samples (never stored): symmetries of the film and the
artefacts of a real scan.

Symmetries (``dihedral``). A film of square cells (dx = dy) keeps its energy under an in-plane
rotation by 90 degrees and under the mirrors x -> -x, y -> -y when m is carried along; for the
mirrors m is transformed as a polar vector (``(-m_x, m_y, m_z)`` for x -> -x), which is the axial
mirror combined with time reversal ``m -> -m``, so D, Ku, A, Ms and the applied field all stay as
they are. The stray field is linear in ``M`` with a kernel of the same symmetry, so H_z and the
MFM image of a z-oriented tip are the transformed images. With the images in ``(y, x)`` order,
``torch.rot90(k=1, dims=(y, x))`` moves the pixel at ``(x, y)`` (centred) to ``(y, -x)``, so m
turns the same way: ``(m_x, m_y) -> (m_y, -m_x)``. tests/test_learn_augment.py checks that the
image of the transformed m is the transformed image.

Scan artefacts (``scan_artefacts``), in units of each image's RMS: additive Gaussian noise of a
standard deviation drawn uniformly in ``0 .. noise`` (default 20 %), a random plane (offset
``N(0, offset)``, a slope whose drop across the image is ``N(0, tilt)``) and random scan-line
(row) offsets ``N(0, s)`` with ``s`` drawn in ``0 .. line_offsets``. Levelling removes the plane
again (``network_input.level``), up to round-off; noise and row offsets stay.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Augmentation:
    """Strengths of the augmentation (dimensionless, in units of each image's RMS).

    ``noise``: largest noise standard deviation; ``offset``, ``tilt``: standard deviations of the
    plane's offset and of its drop across the image; ``line_offsets``: largest standard deviation
    of the row offsets; ``symmetries``: random rotations by 90 degrees and mirrors (``dihedral``).
    """

    noise: float = 0.2
    offset: float = 1.0
    tilt: float = 1.0
    line_offsets: float = 0.1
    symmetries: bool = True


def dihedral(image: torch.Tensor, m: torch.Tensor, k: int, mirror: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """One film, one symmetry: ``k`` quarter turns, after the mirror x -> -x if ``mirror``.

    ``image (..., ny, nx)`` (any number of views before the pixel axes) and ``m (ny, nx, 3)``.
    Odd ``k`` needs a square image (``ny == nx``) of square cells.
    """
    if mirror:
        image = image.flip(-1)
        m = m.flip(-2) * torch.tensor((-1.0, 1.0, 1.0), dtype=m.dtype, device=m.device)
    k %= 4
    if k:
        image = torch.rot90(image, k, dims=(-2, -1))
        m = torch.rot90(m, k, dims=(-3, -2))
        mx, my, mz = m.unbind(-1)
        for _ in range(k):
            mx, my = my, -mx
        m = torch.stack([mx, my, mz], dim=-1)
    return image, m


def random_dihedral(images: torch.Tensor, m: torch.Tensor, generator: torch.Generator):
    """Each sample of a batch under a random symmetry: ``images (B, ny, nx)``, ``m (B, ny, nx, 3)``.

    Odd quarter turns only for square images; returns the transformed ``(images, m)``.
    """
    b, ny, nx = images.shape
    if ny == nx:
        turns = torch.randint(0, 4, (b,), generator=generator)
    else:
        turns = 2 * torch.randint(0, 2, (b,), generator=generator)
    mirrors = torch.randint(0, 2, (b,), generator=generator)
    pairs = [dihedral(images[i], m[i], int(turns[i]), bool(mirrors[i])) for i in range(b)]
    return torch.stack([p[0] for p in pairs]), torch.stack([p[1] for p in pairs])


def scan_artefacts(images: torch.Tensor, generator: torch.Generator,
                   augmentation: Augmentation = Augmentation()) -> torch.Tensor:
    """``images (B, ny, nx)`` with noise, a plane and row offsets scaled by each image's RMS."""
    b, ny, nx = images.shape
    options = {"generator": generator, "dtype": images.dtype}
    scale = images.square().mean(dim=(-2, -1), keepdim=True).sqrt()
    y = torch.linspace(-0.5, 0.5, ny, dtype=images.dtype)[:, None]
    x = torch.linspace(-0.5, 0.5, nx, dtype=images.dtype)[None, :]
    direction = torch.rand(b, 1, 1, **options) * (2 * torch.pi)
    drop = torch.randn(b, 1, 1, **options) * augmentation.tilt
    plane = torch.randn(b, 1, 1, **options) * augmentation.offset + drop * (x * direction.cos() + y * direction.sin())
    lines = torch.randn(b, ny, 1, **options) * torch.rand(b, 1, 1, **options) * augmentation.line_offsets
    noise = torch.randn(b, ny, nx, **options) * torch.rand(b, 1, 1, **options) * augmentation.noise
    return images + scale * (plane + lines + noise).to(images.device)
