"""Sample data (File > Open Sample > napari-mmrecon) and the states ``mmrecon demo`` runs on.

Two relaxed Neel skyrmion states ship in ``data/``: ``<name>.ovf`` (OVF 2.0, the ground truth,
with its material in a ``Desc`` line) and ``<name>_images.npz``, what ``workflows.simulate.simulate``
gives for ``PROBES`` on it: the stray field Hz at 10 and 20 nm on both sides of the film and the
frequency shift of an MFM with a point-dipole tip at 20 nm above it (about 1 MB in all, so a
sample opens at once; tests check the images against a fresh simulation).

Regenerate the files (minutes: the lattice relaxes slowly) with
``python -m napari_mmrecon._sample_data``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .backend import Grid, Material, relax
from .io import read_ovf, write_ovf
from .workflows import jobs, layer_data
from .workflows.options import MATERIAL_NAMES, defaults
from .workflows.simulate import (
    UNITS,
    Probe,
    SimulatedImage,
    Simulation,
    simulate,
    texture,
)

DATA = Path(__file__).parent / "data"
MATERIAL = Material(**{**defaults(MATERIAL_NAMES), "alpha": 0.3})
"""Co/Pt-like film with interfacial DMI, the material of both samples: the declared defaults
(``workflows.options``) with the damping alpha = 0.3 the bundled files were written with (it does
not enter a relaxation)."""
PROBES = (Probe(heights=(10e-9, 20e-9), sides=("top", "bottom"), outputs=("Hz",)),
          Probe(heights=(20e-9,), sides=("top",), outputs=("frequency_shift",)))
"""Stray field Hz at 10 and 20 nm on both sides, MFM frequency shift at 20 nm on top."""


@dataclass(frozen=True)
class Sample:
    """A bundled state: its file, how it was made (grid, texture preset and options)."""

    name: str
    title: str
    grid: Grid
    texture: str
    options: dict

    @property
    def path(self) -> Path:
        """The bundled state (OVF)."""
        return DATA / f"{self.name}.ovf"

    @property
    def images_path(self) -> Path:
        """The bundled images (npz), keys ``"<probe index>|<quantity>|<side>|<height in m>"``."""
        return DATA / f"{self.name}_images.npz"


SAMPLES = {
    "skyrmion_lattice": Sample("skyrmion_lattice", "skyrmion lattice",
                               Grid(nx=128, ny=128, nz=1, dx=2e-9, dy=2e-9, dz=1e-9, device="cpu"),
                               "skyrmion_lattice", {"spacing": 40e-9, "radius": 10e-9}),
    "single_skyrmion": Sample("single_skyrmion", "skyrmion",
                              Grid(nx=64, ny=64, nz=1, dx=1e-9, dy=1e-9, dz=1e-9, device="cpu"),
                              "skyrmion", {"radius": 10e-9}),
}


def make_state(sample: Sample, folder: Path = DATA) -> Path:
    """Relax ``sample`` from its texture (default tolerance) and write it to ``folder``."""
    m = relax(texture(sample.texture, sample.grid, **sample.options), sample.grid, MATERIAL)
    path = Path(folder) / sample.path.name
    write_ovf(path, m, sample.grid, title="m",
              desc=[f"napari-mmrecon sample {sample.name}: relaxed {sample.texture} {sample.options}"]
              + layer_data.ovf_description(layer_data.material_to_dict(MATERIAL)))
    return path


def simulate_probes(m, grid: Grid, material: Material) -> list[Simulation]:
    """The ``PROBES`` simulated on a state, one ``Simulation`` per probe."""
    return [jobs.run(simulate(m, grid, material, probe)) for probe in PROBES]


def make_images(sample: Sample, folder: Path = DATA) -> Path:
    """Simulate ``PROBES`` on the bundled state of ``sample`` and write the npz to ``folder``."""
    arrays = {f"{index}|{image.quantity}|{image.side}|{image.height!r}": image.data
              for index, result in enumerate(simulate_probes(*load_state(sample.name)))
              for image in result.images}
    path = Path(folder) / sample.images_path.name
    np.savez_compressed(path, **arrays)
    return path


def load_state(name: str):
    """``(m, grid, material)`` of a bundled sample: m ``(1, ny, nx, 3)``, its Grid, the Material."""
    field, grid, header = read_ovf(SAMPLES[name].path, return_header=True)
    m, known = layer_data.magnetization_from_field(field, header)
    return m, grid, layer_data.material_from_dict(known, MATERIAL)


def load_images(name: str) -> list[Simulation]:
    """The bundled ``simulate_probes`` results of a sample."""
    m, grid, material = load_state(name)
    results = [Simulation(m, grid, material, probe) for probe in PROBES]
    with np.load(SAMPLES[name].images_path) as stored:
        for key in stored.files:
            index, quantity, side, height = key.split("|")
            results[int(index)].images.append(SimulatedImage(quantity, UNITS[quantity], side, float(height),
                                                             stored[key]))
    return results


def sample_layers(name: str) -> list[tuple]:
    """Layer data tuples: the simulated images, then the ground-truth magnetization on top."""
    sample = SAMPLES[name]
    source = f"napari-mmrecon sample {name}"
    results = load_images(name)
    images = [layer for result in results for layer in layer_data.simulation_layers(result, source=source)]
    first = results[0]
    truth = layer_data.magnetization_layers(first.m, first.grid, first.material, name="m (truth)",
                                            source=f"{source}: the relaxed {sample.title} of the images")
    return images + truth


def skyrmion_lattice() -> list[tuple]:
    """Relaxed Neel skyrmion lattice, 256 x 256 nm: stray field, MFM image, ground truth."""
    return sample_layers("skyrmion_lattice")


def single_skyrmion() -> list[tuple]:
    """Relaxed isolated Neel skyrmion, 64 x 64 nm: stray field, MFM image, ground truth."""
    return sample_layers("single_skyrmion")


if __name__ == "__main__":  # pragma: no cover - regenerates the bundled files
    for item in SAMPLES.values():
        print("wrote", make_state(item), make_images(item))
