"""The U-Net that maps one normalized image (and its conditioning channels) to a magnetization.

A plain, fully convolutional U-Net of our own: ``depth`` encoder levels of two
Conv3x3-GroupNorm-SiLU blocks with ``base * 2**level`` channels, 2 x 2 max-pooling between
them, a bottleneck of ``base * 2**depth`` channels, and a decoder of stride-2 transposed
convolutions whose outputs are concatenated with the encoder's (skip connections), ending in a
1 x 1 convolution to ``out_channels``. Inputs ``(B, in_channels, ny, nx)`` need ``ny`` and ``nx``
divisible by ``2**depth`` (``network_input.pad_to_multiple`` pads any image). float32.

The default (``base=8, depth=3``, 0.12 M parameters, 0.5 MB of float32 weights) predicts a
512 x 512 image in 0.12 s on two idle CPU cores (goal 0.5 s) and trains at 117-142 items of
64 x 64 per second there; ``base=16`` (0.48 M parameters) takes 0.24 s and trains 3-4 times
slower, too slow for the shipped weights' CPU training budget (``benchmarks/bench_training.py``).

Checkpoint format (``checkpoint`` / ``load_checkpoint``)::

    {"config": model.config(), "state_dict": {...tensors}, "meta": {...plain values}}

saved with ``torch.save`` and read with ``torch.load(weights_only=True)`` (no pickled code).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .network_input import CHANNELS

MAX_GROUPS = 8
"""Most GroupNorm groups per block (fewer when the channel count is not a multiple of it)."""


def _groups(channels: int) -> int:
    """The largest divisor of ``channels`` that is at most ``MAX_GROUPS``."""
    return next(g for g in range(min(MAX_GROUPS, channels), 0, -1) if channels % g == 0)


class ConvBlock(nn.Sequential):
    """Two Conv3x3 (zero padding 1) - GroupNorm - SiLU layers: ``(B, cin, ny, nx) -> (B, cout, ny, nx)``."""

    def __init__(self, cin: int, cout: int):
        super().__init__(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(_groups(cout), cout), nn.SiLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.GroupNorm(_groups(cout), cout), nn.SiLU())


class UNet(nn.Module):
    """U-Net ``(B, in_channels, ny, nx) -> (B, out_channels, ny, nx)`` (raw, not normalized).

    Parameters
    ----------
    in_channels, out_channels : int
        Input channels (``network_input.CHANNELS``: 7) and outputs (3: the components of m before
        normalization).
    base : int
        Channels of the first level; level ``i`` has ``base * 2**i``.
    depth : int
        Number of poolings; ``ny`` and ``nx`` must be multiples of ``2**depth``.
    """

    def __init__(self, in_channels: int = CHANNELS, out_channels: int = 3, base: int = 8, depth: int = 3):
        super().__init__()
        for name, value in (("in_channels", in_channels), ("out_channels", out_channels), ("base", base),
                            ("depth", depth)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"UNet {name} must be a positive integer, got {value!r}")
        self.in_channels, self.out_channels, self.base, self.depth = in_channels, out_channels, base, depth
        widths = [base * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList(ConvBlock(cin, cout) for cin, cout in zip([in_channels] + widths[:-2], widths[:-1]))
        self.bottleneck = ConvBlock(widths[-2], widths[-1])
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2)
                                for i in reversed(range(depth)))
        self.merge = nn.ModuleList(ConvBlock(2 * widths[i], widths[i]) for i in reversed(range(depth)))
        self.head = nn.Conv2d(widths[0], out_channels, 1)

    @property
    def multiple(self) -> int:
        """What ``ny`` and ``nx`` must be multiples of: ``2**depth``."""
        return 2**self.depth

    def config(self) -> dict:
        """The keyword arguments that rebuild this network: ``UNet(**model.config())``."""
        return {"in_channels": self.in_channels, "out_channels": self.out_channels, "base": self.base,
                "depth": self.depth}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, in_channels, ny, nx)`` -> ``(B, out_channels, ny, nx)``; ``ValueError`` unless
        ``ny`` and ``nx`` are multiples of ``2**depth``."""
        ny, nx = x.shape[-2:]
        if ny % self.multiple or nx % self.multiple:
            raise ValueError(f"UNet input of {ny} x {nx} pixels: both must be multiples of {self.multiple} "
                             "(network_input.pad_to_multiple pads an image)")
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = nn.functional.max_pool2d(x, 2)
        x = self.bottleneck(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips)):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


def weights_bytes(model: nn.Module) -> int:
    """Size of the model's parameters and buffers in bytes (what a checkpoint's weights take)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def checkpoint(model: UNet, meta: dict) -> dict:
    """The checkpoint record of ``model`` (weights copied to the CPU) with ``meta`` (plain values:
    str, numbers, bool, None, lists and dicts of them)."""
    return {"config": model.config(), "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "meta": meta}


def load_checkpoint(path) -> tuple[UNet, dict]:
    """``(model, meta)`` from a checkpoint file (``weights_only=True``; the model on the CPU, in
    eval mode). ``ValueError`` naming the file if it is not a readable U-Net checkpoint."""
    path = Path(path)
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
        model = UNet(**record["config"])
        model.load_state_dict(record["state_dict"])
    except FileNotFoundError:
        raise
    except Exception as err:  # unpickling, zip and shape errors differ by torch version
        raise ValueError(f"{path} is not a readable U-Net checkpoint: {err}") from None
    return model.eval(), dict(record.get("meta") or {})
