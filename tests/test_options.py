"""The user options declared once in workflows.options: their defaults agree with the backend's
keyword defaults, their ranges and units with the fit's, and check() refuses what is outside."""

import argparse
import dataclasses
import inspect
import math

import pytest

import napari_mmrecon as mm
from napari_mmrecon import _sample_data
from napari_mmrecon.backend.inverse.parameter_fit import PHYSICAL_RANGES, fit_parameters
from napari_mmrecon.backend.solvers.relax import DEFAULT_TORQUE_TOL
from napari_mmrecon.workflows import simulate
from napari_mmrecon.workflows.fit import FitOptions, parameter_units
from napari_mmrecon.workflows.reconstruct import ReconstructOptions
from napari_mmrecon.workflows.options import (
    MATERIAL_NAMES,
    OPTIONS,
    add_arguments,
    check,
    defaults,
    help_text,
)


def field_defaults(cls) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def keyword_defaults(function) -> dict:
    return {name: p.default for name, p in inspect.signature(function).parameters.items()}


FILM_ONLY = ("Ku", "D")
"""The backend's ``Material()`` is a neutral film without anisotropy and DMI; the options'
defaults of these two are the skyrmion film of the bundled samples (checked below)."""


@pytest.mark.parametrize("name", [name for name in MATERIAL_NAMES if name not in FILM_ONLY])
def test_material_defaults_agree_with_the_backend(name):
    assert OPTIONS[name].default == field_defaults(mm.Material)[name]


def test_film_defaults_are_the_bundled_samples_film():
    _, _, material = _sample_data.load_state("skyrmion_lattice")
    for name in ("Ms", "A") + FILM_ONLY:
        assert OPTIONS[name].default == getattr(material, name), name


def test_fit_defaults_agree_with_the_backend_and_fit_options():
    backend = keyword_defaults(fit_parameters)
    for name in ("fit", "bias", "bias_strength", "optimizer", "max_iter", "relax_tol"):
        assert OPTIONS[name].default == backend[name] == field_defaults(FitOptions)[name], name


def test_reconstruction_defaults_agree_with_the_backend_and_reconstruct_options():
    backend, options = keyword_defaults(mm.reconstruct_texture), field_defaults(ReconstructOptions)
    for name, option in (("method", "method"), ("init", "init"), ("bias_strength", "bias_strength"),
                         ("noise", "noise"), ("discrepancy", "discrepancy"), ("max_iter", "reconstruct_max_iter")):
        assert OPTIONS[option].default == backend[name] == options[name], name
    assert backend["fit"] == options["fit"] == () and OPTIONS["reconstruct_fit"].default is None
    assert "unet" in OPTIONS["init"].choices  # the shipped network (weights/unet.pt) starts the hybrid


def test_two_commands_share_a_flag_and_messages_name_it():
    assert (OPTIONS["reconstruct_fit"].flag, OPTIONS["reconstruct_max_iter"].flag) == ("--fit", "--max-iter")
    parser = argparse.ArgumentParser()
    add_arguments(parser, ("reconstruct_fit", "reconstruct_max_iter"))
    args = parser.parse_args(["--fit", "Ku", "height", "--max-iter", "7"])
    assert (args.reconstruct_fit, args.reconstruct_max_iter) == (["Ku", "height"], 7)
    assert parser.parse_args([]).reconstruct_fit is None
    with pytest.raises(ValueError, match="fit = 'bias' is not one of Ms, A, Ku, D, height"):
        check("reconstruct_fit", ["bias"])
    with pytest.raises(ValueError, match="max_iter must be a whole number"):
        check("reconstruct_max_iter", 2.5)


def test_measurement_grid_and_texture_defaults_agree_with_the_backend():
    cantilever = field_defaults(mm.Cantilever)
    assert defaults(("k", "f0", "Q")) == {key: cantilever[key] for key in ("k", "f0", "Q")}
    assert OPTIONS["tip_moment"].default == field_defaults(mm.PointDipoleTip)["moment"]
    assert OPTIONS["tip_charge"].default == field_defaults(mm.PointMonopoleTip)["charge"]
    assert OPTIONS["tol"].default == DEFAULT_TORQUE_TOL == field_defaults(simulate.Relaxation)["tol"]
    assert OPTIONS["tol"].default == keyword_defaults(mm.relax)["tol"]
    texture = keyword_defaults(simulate.texture)
    assert (OPTIONS["radius"].default, OPTIONS["spacing"].default, OPTIONS["seed"].default) == (
        texture["radius"], texture["spacing"], texture["seed"])
    grid = field_defaults(mm.Grid)
    assert (OPTIONS["cell"].default, OPTIONS["nz"].default) == (grid["dx"], grid["nz"])
    assert OPTIONS["thickness"].default == grid["nz"] * grid["dz"]


def test_sample_material_is_the_declared_default_with_its_files_damping():
    declared = defaults(MATERIAL_NAMES)
    assert {name: getattr(_sample_data.MATERIAL, name) for name in MATERIAL_NAMES} == {**declared, "alpha": 0.3}


def test_material_ranges_and_units_are_the_fits():
    for name, (low, high, unit) in PHYSICAL_RANGES.items():
        for option in (OPTIONS[name],) if name != "height" else (OPTIONS["height"], OPTIONS["heights"]):
            assert (option.minimum, option.maximum, option.unit) == (low, high, unit), name
    units = parameter_units(mm.StrayFieldMeasurement(height=5e-9))
    assert units == {"Ms": "A/m", "A": "J/m", "Ku": "J/m^3", "D": "J/m^2", "height": "m", "offset": "A/m",
                     "gain": ""}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_every_option_is_complete_and_its_default_in_range(name):
    option = OPTIONS[name]
    assert option.name == name and option.name.isidentifier()
    assert option.help and "`" not in option.help and "\n" not in option.help
    assert option.kind in (float, int, str, bool)
    assert check(name, option.default) == option.default
    if option.kind is str:
        assert option.choices
    if option.display_unit:
        assert option.unit and option.display_scale != 1.0


@pytest.mark.parametrize("name, value, message", [
    ("heights", (10,), "heights = 10.0 m is outside the physical range (1e-10 to 1e-05 m): did you mean 10e-9 "
                       "(10 nm)?"),
    ("height", 1e300, "height = 1e+300 m is outside the physical range (1e-10 to 1e-05 m)"),
    ("Ms", 580, "did you mean 580e3 (580 kA/m)?"),
    ("Ms", 5e9, "Ms = 5000000000.0 A/m is outside the physical range (1000 to 1e+07 A/m)"),
    ("Ms", -5, "the saturation magnetization must be > 0, got Ms = -5.0 A/m"),
    ("D", 3, "did you mean 3e-3 (3 mJ/m^2)?"),
    ("tol", 0, "the relaxation tolerance must be > 0, got tol = 0.0"),
    ("tol", -1, "the relaxation tolerance must be > 0, got tol = -1.0"),
    ("tol", math.nan, "tol must be a finite number, got nan"),
    ("relax_tol", math.inf, "relax_tol must be a finite number, got inf"),
    ("threads", -1, "threads = -1 is outside the range (0 to 1024)"),
    ("nz", 0, "the number of cells across the film thickness must be > 0, got nz = 0"),
    ("n", 2.5, "n must be a whole number, got 2.5"),
    ("cell", "abc", "cell must be a number, got 'abc'"),
    ("side", "left", "side = 'left' is not one of top, bottom, both"),
    ("outputs", (), "outputs: give at least one value"),
])
def test_check_refuses_with_one_line_naming_option_value_and_range(name, value, message):
    with pytest.raises(ValueError) as error:
        check(name, value)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_check_accepts_physics_and_converts():
    assert check("D", -3e-3) == -3e-3 and check("field", -1e5) == -1e5 and check("tip_charge", -1e-9) == -1e-9
    assert check("heights", [5e-9, "2e-8"]) == (5e-9, 2e-8) and check("n", 16.0) == 16
    assert check("height", None) is None and check("Ku", 0) == 0.0


def test_arguments_show_unit_default_and_negative_form():
    parser = argparse.ArgumentParser()
    add_arguments(parser, ("heights", "D", "Ms", "quiet"), from_input=("Ms",))
    args = parser.parse_args(["--heights", "5e-9", "7e-9", "--D=-3e-3"])
    assert (args.heights, args.D, args.Ms, args.quiet) == ([5e-9, 7e-9], -3e-3, None, False)
    assert help_text(OPTIONS["heights"]) == "heights above (or below) the film (m, default 1e-08 2e-08)"
    assert help_text(OPTIONS["Ms"], from_input=True) == ("saturation magnetization (A/m, default: from the input "
                                                         "file, else 580000)")
    assert help_text(OPTIONS["D"]).endswith("(J/m^2, default 0.003); a negative value as --D=-0.003")
    assert "negative" not in help_text(OPTIONS["Ku"])
