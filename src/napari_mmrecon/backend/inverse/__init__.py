"""Inverse problems: material parameters from an image (objective, optimizers, fit state, the
parameter fit itself, skyrmion pinning and the bias field that holds a texture) and the studies
built on it (sensitivity, noise robustness)."""
