"""Learning textures from images: the synthetic dataset (recipe, starting textures, shards, the
zarr store)."""

from .dataset_store import SyntheticDataset, generate_dataset, open_dataset
from .recipe import DatasetRecipe
from .synthetic import make_shard

__all__ = ["DatasetRecipe", "SyntheticDataset", "generate_dataset", "make_shard", "open_dataset"]
