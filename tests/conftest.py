"""Shared test settings: float64 on the CPU, two threads, as in CI."""

import torch

torch.set_num_threads(2)
