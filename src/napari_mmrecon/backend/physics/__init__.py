"""The micromagnetic model: grid and material, the energy terms (exchange, anisotropy, DMI, Zeeman,
demagnetization by the Newell tensor), the fused linear field, the energy model that sums them,
starting textures and texture analysis (topological charge, skyrmion radius)."""
