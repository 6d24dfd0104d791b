"""Every user option of mmrecon, declared once: name, SI default, unit, help, kind, choices,
physical range and the unit a widget shows it in.

The command line builds its flags from here (``add_arguments``), ``FitOptions`` and the sample
data take their defaults from here, and ``check`` refuses a value outside its option's range
with a one-line message (and the likely unit slip, e.g. nanometres given as metres)::

    OPTIONS["height"].default, OPTIONS["height"].unit        # None (from the target), "m"
    check("heights", (10e-9, 20e-9))                         # (1e-08, 2e-08)
    check("heights", (10,))                                  # ValueError: ... did you mean 10e-9 (10 nm)?

A default of None means "from the input file, or not given". An option whose default is a tuple
takes one or more values. The backend (``Material``, ``fit_parameters``, ``Cantilever``, the
tips, ``relax``) keeps its own keyword defaults; tests/test_options.py checks they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..backend.physics.grid import MU0
from ..backend.inverse.optimizers import OPTIMIZERS
from ..backend.inverse.parameter_fit import BIAS_OPTIONS, FITTABLE, PHYSICAL_RANGES
from ..backend.inverse.reconstruction import DISCREPANCY, INITS, METHODS
from ..backend.inverse.tip_calibration import MODELS as TIP_MODELS
from ..backend.measured.imageprep import POLYNOMIAL_ORDERS, ROW_ALIGNMENTS
from ..backend.measured.preparation import UNITS as CONVERTIBLE
from .simulate import MAX_CELLS, MFM_QUANTITIES, OUTPUTS, SIDES, TEXTURES


@dataclass(frozen=True)
class Option:
    """One user option.

    ``name``: a python identifier (CLI flag ``--name`` with ``-`` for ``_``); ``default``: SI
    value, None for "from the input file / not given", a tuple for an option of one or more
    values; ``unit``: SI unit text ("" if dimensionless); ``help``: one line of plain text, whose
    part before a ":" names the quantity in messages; ``kind``: float, int, str or bool;
    ``choices``: the allowed values of a str option; ``minimum``, ``maximum``: the physical
    range, inclusive; ``display_unit``, ``display_scale``: the unit a widget shows and the factor
    from SI to it (1e9 for nm); ``cli``: the name of the command-line flag and of the option in
    messages when it differs from ``name`` (two commands' options of one flag: the fit's
    ``--fit`` and the reconstruction's); ``many``: one or more values although the default is None.
    """

    name: str
    default: object
    unit: str = ""
    help: str = ""
    kind: type = float
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None
    display_unit: str = ""
    display_scale: float = 1.0
    cli: str = ""
    many: bool = False

    @property
    def takes_many(self) -> bool:
        """Whether the option takes one or more values: a tuple default, or ``many``."""
        return self.many or isinstance(self.default, tuple)

    @property
    def label(self) -> str:
        """The option's name on the command line and in messages: ``cli``, else ``name``."""
        return self.cli or self.name

    @property
    def flag(self) -> str:
        """The command-line flag, e.g. ``--tip-moment``."""
        return "--" + self.label.replace("_", "-")


def _physical(name: str, option_name: str, default, help: str, **display) -> Option:
    """An option whose range and unit are the fit's ``PHYSICAL_RANGES[name]``."""
    low, high, unit = PHYSICAL_RANGES[name]
    return Option(option_name, default, unit, help, minimum=low, maximum=high, **display)


NM = {"display_unit": "nm", "display_scale": 1e9}
RECONSTRUCTION_STARTS = INITS
"""The named starts of a reconstruction offered to users (``reconstruct_texture(init=...)``)."""
RECONSTRUCTION_FITTABLE = FITTABLE
"""What a reconstruction may fit jointly with the texture (``reconstruct_texture(fit=...)``)."""
LEVELS = (("plane",) + tuple(f"poly:{n}" for n in POLYNOMIAL_ORDERS)
          + tuple(f"line:{n}" for n in range(4)))
"""The levellings of ``mmrecon prepare --level`` (``workflows.prepare.level_step``)."""
MAX_N = math.isqrt(MAX_CELLS)
"""Largest texture grid side (cells) the simulator accepts in a single layer."""

_DECLARED = (
    # material
    _physical("Ms", "Ms", 5.8e5, "saturation magnetization", display_unit="kA/m", display_scale=1e-3),
    _physical("A", "A", 1.5e-11, "exchange stiffness", display_unit="pJ/m", display_scale=1e12),
    _physical("Ku", "Ku", 8e5, "uniaxial anisotropy along z", display_unit="MJ/m^3", display_scale=1e-6),
    _physical("D", "D", 3e-3, "interfacial DMI constant, either sign", display_unit="mJ/m^2", display_scale=1e3),
    Option("alpha", 0.5, "", "Gilbert damping", minimum=0.0, maximum=10.0),
    Option("field", 0.0, "A/m", "external field H along z, either sign", minimum=-1e7, maximum=1e7,
           display_unit="mT", display_scale=MU0 * 1e3),
    Option("fields", None, "A/m", "external field H along z of each image of a field series, one per target in "
           "their order, comma-separated, either sign", minimum=-1e7, maximum=1e7, display_unit="mT",
           display_scale=MU0 * 1e3, many=True),
    # grid and texture
    Option("texture", "skyrmion", help="starting-state preset", kind=str, choices=TEXTURES),
    Option("n", 64, help="number of cells per side of a texture's square grid", kind=int, minimum=1, maximum=MAX_N),
    Option("cell", 1e-9, "m", "in-plane cell size of a texture", minimum=1e-11, maximum=1e-6, **NM),
    Option("thickness", 1e-9, "m", "film thickness", minimum=1e-11, maximum=1e-5, **NM),
    Option("nz", 1, help="number of cells across the film thickness", kind=int, minimum=1, maximum=MAX_N),
    Option("radius", 10e-9, "m", "skyrmion radius of a texture", minimum=1e-10, maximum=1e-5, **NM),
    Option("spacing", 40e-9, "m", "skyrmion lattice spacing, stripe and labyrinth period", minimum=1e-10,
           maximum=1e-5, **NM),
    Option("seed", 0, help="seed of the random and labyrinth textures", kind=int, minimum=0, maximum=2**32 - 1),
    Option("device", "cpu", help="torch device; auto: cuda when present", kind=str, choices=("cpu", "cuda", "auto")),
    Option("threads", 0, help="torch CPU threads, 0 for torch's choice", kind=int, minimum=0, maximum=1024),
    # measurement
    _physical("height", "heights", (10e-9, 20e-9), "heights above (or below) the film", **NM),
    _physical("height", "height", None, "height (MFM: lift height) above or below the film at which the "
                                        "target was measured", **NM),
    Option("side", "top", help="side of the film the probe faces; both: one image per side", kind=str,
           choices=SIDES + ("both",)),
    Option("outputs", ("Hz", "frequency_shift"), help="images to compute", kind=str, choices=OUTPUTS),
    Option("measurement", "stray", help="what the target image is: stray field or MFM", kind=str,
           choices=("stray", "mfm")),
    Option("component", "z", help="stray-field component of the target", kind=str, choices=("x", "y", "z")),
    Option("quantity", "frequency_shift", help="MFM image quantity", kind=str, choices=MFM_QUANTITIES),
    Option("tip", "dipole", help="MFM tip model", kind=str, choices=("dipole", "monopole")),
    Option("tip_moment", 1e-16, "A m^2", "moment of a point-dipole tip", minimum=1e-22, maximum=1e-10),
    Option("tip_charge", 1e-9, "A m", "charge of a point-monopole tip, either sign", minimum=-1e-4, maximum=1e-4),
    Option("tip_height_offset", 0.0, "m", "effective height of the tip above the nominal lift height (a calibrated "
           "tip's), either sign", minimum=-1e-6, maximum=1e-6, **NM),
    Option("k", 3.0, "N/m", "cantilever spring constant", minimum=1e-4, maximum=1e4),
    Option("f0", 75e3, "Hz", "cantilever resonance frequency", minimum=1.0, maximum=1e8,
           display_unit="kHz", display_scale=1e-3),
    Option("Q", 200.0, "", "cantilever quality factor", minimum=1.0, maximum=1e7),
    Option("pixel_size", None, "m", "pixel size of a target TIFF that does not store one", minimum=1e-11,
           maximum=1e-5, **NM),
    # measured-image preparation (mmrecon prepare)
    Option("level", None, help="levelling: plane, poly:N (a 2-D polynomial of total degree N) or line:N (a "
                               "polynomial of degree N fitted to each row)", kind=str,
           choices=LEVELS),
    Option("align_rows", None, help="scan-line jumps: shift each row by its median, its trimmed mean or the median "
                                    "of its differences to the row before", kind=str, choices=ROW_ALIGNMENTS),
    Option("outliers", None, "", "replace pixels further than this many robust standard deviations from the "
                                 "median of their 3 x 3 neighbourhood", minimum=1.0, maximum=1e3),
    Option("scars", None, "", "replace strokes along a row (4 pixels or longer) further than this many robust "
                              "standard deviations from the rows above and below", minimum=1.0, maximum=1e3),
    Option("crop", None, "m", "crop to the rectangle y0 x0 height width from the image's corner", minimum=0.0,
           maximum=1e-2, many=True, **NM),
    Option("resample", None, "m", "resample onto square pixels of this size", minimum=1e-11, maximum=1e-5, **NM),
    Option("input_quantity", None, help="what the input image is, where its file does not say", kind=str,
           choices=tuple(CONVERTIBLE), cli="quantity"),
    Option("convert", None, help="convert the image to this quantity with the cantilever's k, f0 and Q: phase "
                                 "(deg), frequency shift (Hz), force gradient (N/m)", kind=str,
           choices=tuple(CONVERTIBLE)),
    # relaxation
    Option("relax", False, help="relax the state before measuring", kind=bool),
    Option("tol", 1e-4, "", "relaxation tolerance: stop at max |m x H|/Ms below it", minimum=1e-14, maximum=1.0),
    # fit
    Option("fit", ("Ms", "A", "Ku", "D"), help="parameters to fit", kind=str, choices=FITTABLE),
    Option("bias", "target", help="bias field holding the texture in the measured configuration", kind=str,
           choices=BIAS_OPTIONS),
    Option("bias_strength", 0.2, "", "bias strength in units of the anisotropy field 2 Ku / (mu0 Ms)",
           minimum=0.0, maximum=100.0),
    Option("optimizer", "levenberg-marquardt", help="optimizer of the fit", kind=str, choices=OPTIMIZERS),
    Option("max_iter", 100, help="outer iterations per stage of the fit", kind=int, minimum=1, maximum=100_000),
    Option("relax_tol", 1e-8, "", "relaxation tolerance: the fit's relaxations stop at max |m x H|/Ms below it",
           minimum=1e-14, maximum=1.0),
    # tip calibration
    _physical("height", "lift", None, "nominal lift height of the reference MFM image", **NM),
    Option("calibration_model", "dipole", help="effective tip fitted to the reference: point dipole, point monopole "
                                               "or both", kind=str, choices=TIP_MODELS, cli="model"),
    Option("fixed_height", False, help="keep the nominal lift height (do not fit the tip's effective height offset)",
           kind=bool),
    # texture reconstruction
    Option("method", "bias", help="reconstruction method: bias field, energy penalty, energy penalty then relaxed with its domains held, or Fourier inversion", kind=str,
           choices=METHODS),
    Option("init", "estimate", help="start of the reconstruction: a texture estimated from the image, uniform, or the U-Net's "
                                       "prediction (the hybrid, for the weak side)",
           kind=str, choices=RECONSTRUCTION_STARTS),
    Option("reconstruct_fit", None, help="material parameters (and the height, the image's gain and offset) fitted "
                                         "jointly with the texture; default none: the material is known", kind=str,
           choices=RECONSTRUCTION_FITTABLE, cli="fit", many=True),
    Option("noise", None, "", "noise level of the images, in their units (A/m, Hz or deg); default: estimated from "
                              "each image", minimum=0.0),
    Option("discrepancy", DISCREPANCY, "", "discrepancy factor: stop once the residual RMS is at most this times the "
                                            "noise", minimum=1e-3, maximum=1e3),
    Option("reconstruct_max_iter", 100, help="outer iterations of the reconstruction over all its stages", kind=int,
           minimum=1, maximum=100_000, cli="max_iter"),
    Option("row_offsets", False, help="every scan line (image row) has its own unknown offset, as a measured image "
                                      "has around scan-line jumps: profiled out of the misfit (methods energy and "
                                      "energy-relaxed)", kind=bool),
    # synthetic dataset
    Option("samples", None, help="number of samples of the dataset: more than it holds appends to it", kind=int,
           minimum=1, maximum=100_000_000, cli="n"),
    Option("dataset_seed", 0, help="seed of the dataset: it fixes every sample", kind=int, minimum=0,
           maximum=2**32 - 1, cli="seed"),
    Option("cells", 64, help="pixels per side of every sample's square film", kind=int, minimum=8, maximum=1024),
    Option("shard_size", 16, help="samples relaxed together in one batch: one shard of the dataset", kind=int,
           minimum=1, maximum=4096),
    Option("workers", 0, help="local processes computing shards; 0: one per CPU core", kind=int, minimum=0,
           maximum=1024),
    # U-Net training
    Option("epochs", 30, help="training epochs of the run (a resumed run continues up to it)", kind=int, minimum=1,
           maximum=1_000_000),
    Option("batch_size", 16, help="training items per optimizer step (and process)", kind=int, minimum=1,
           maximum=4096),
    Option("lr", 1e-3, "", "AdamW learning rate", minimum=1e-8, maximum=1.0),
    Option("train_seed", 0, help="seed of the training: held-out split, initial weights, views, augmentation",
           kind=int, minimum=0, maximum=2**32 - 1, cli="seed"),
    Option("train_device", "auto", help="torch device of the training; auto: cuda when present", kind=str,
           choices=("cpu", "cuda", "auto"), cli="device"),
    # outputs
    Option("overwrite", False, help="replace existing output files (inputs are never replaced)", kind=bool),
    Option("quiet", False, help="no progress bar", kind=bool),
)

OPTIONS: dict[str, Option] = {option.name: option for option in _DECLARED}
"""Every option by name."""
MATERIAL_NAMES = ("Ms", "A", "Ku", "D", "alpha")
"""The material options, in the order of ``Material``'s fields."""


def defaults(names) -> dict:
    """``{name: declared default}`` (SI) of ``names``."""
    return {name: OPTIONS[name].default for name in names}


# ----------------------------------------------------------------------------- checking


def check(name: str, value):
    """``value`` of option ``name`` as its kind (a tuple for a many-valued option; None stays
    None); ``ValueError`` naming the option, the value, its range and a likely unit slip."""
    option = OPTIONS[name]
    if value is None:
        return None
    if option.takes_many:
        values = (value,) if isinstance(value, (str, int, float)) else tuple(value)
        if not values:
            raise ValueError(f"{option.label}: give at least one value")
        return tuple(_check_one(option, item) for item in values)
    return _check_one(option, value)


def _check_one(option: Option, value):
    if option.kind is bool:
        return bool(value)
    if option.kind is str:
        if option.choices and value not in option.choices:
            raise ValueError(f"{option.label} = {value!r} is not one of {', '.join(option.choices)}")
        return value
    number = _number(option, value)
    if not _inside(option, number):
        raise ValueError(_range_message(option, number))
    return number


def _inside(option: Option, number: float) -> bool:
    return ((option.minimum is None or number >= option.minimum)
            and (option.maximum is None or number <= option.maximum))


def _number(option: Option, value):
    """``value`` as a finite float (an integral int for an int option), else ``ValueError``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{option.label} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"{option.label} must be a finite number, got {value!r}")
    if option.kind is int:
        if number != int(number):
            raise ValueError(f"{option.label} must be a whole number, got {value!r}")
        return int(number)
    return number


def _range_message(option: Option, number) -> str:
    """Why ``number`` is refused: not positive where the option must be, or outside the range."""
    value = f"{option.label} = {number!r}" + (f" {option.unit}" if option.unit else "")
    if number <= 0 < (option.minimum or 0):
        return f"the {option.help.split(':')[0]} must be > 0, got {value}"
    kind = "physical range" if option.unit else "range"
    return f"{value} is outside the {kind} ({range_text(option)}){_unit_hint(option, number)}"


def range_text(option: Option) -> str:
    """The accepted range, e.g. ``"1e-10 to 1e-05 m"``, ``">= 0"``."""
    unit = f" {option.unit}" if option.unit else ""
    low, high = (None if bound is None else int(bound) if option.kind is int else f"{bound:g}"
                 for bound in (option.minimum, option.maximum))
    if low is not None and high is not None:
        return f"{low} to {high}{unit}"
    if low is not None:
        return f">= {low}{unit}"
    return f"<= {high}{unit}" if high is not None else "any value"


def _unit_hint(option: Option, number: float) -> str:
    """``": did you mean 10e-9 (10 nm)?"`` when ``number`` is in range read in the display unit
    (a power of ten of the SI unit), else ``""``."""
    exponent = math.log10(option.display_scale)
    if not option.display_unit or exponent != round(exponent) or exponent == 0:
        return ""
    if not _inside(option, number / option.display_scale):
        return ""
    return f": did you mean {number:g}e{-round(exponent)} ({number:g} {option.display_unit})?"


# ----------------------------------------------------------------------------- command line


def add_arguments(parser, names, from_input=()) -> None:
    """Add the flag of each option of ``names`` to an ``argparse`` parser, with the help
    "text (unit, default X)". An option in ``from_input`` defaults to None on the command line (the
    command takes its value from the input file, else the declared default), and its help says so.
    Numbers are only converted here; ``check`` judges their range."""
    for name in names:
        option = OPTIONS[name]
        given = name in from_input or option.default is None
        if option.kind is bool:
            parser.add_argument(option.flag, dest=name, action="store_true", help=option.help)
            continue
        parser.add_argument(option.flag, dest=name, type=option.kind, choices=option.choices or None,
                            nargs="+" if option.takes_many else None,
                            default=None if given else option.default, help=help_text(option, name in from_input))


def help_text(option: Option, from_input: bool = False) -> str:
    """``"text (unit, default X)"``, and for a number that may be negative how to give it."""
    default = option.default
    shown = " ".join(map(_shown, default)) if isinstance(default, tuple) else _shown(default)
    parts = [option.unit] if option.unit else []
    if from_input:
        parts.append("default: from the input file" + (f", else {shown}" if default is not None else ""))
    elif default is not None:
        parts.append(f"default {shown}")
    text = option.help + (f" ({', '.join(parts)})" if parts else "")
    if option.kind is float and option.minimum is not None and option.minimum < 0:
        example = abs(default) if default else option.maximum / 100
        text += f"; a negative value as {option.flag}=-{example:g}"
    return text.replace("%", "%%")


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
