"""Tests of the OVF reader and writer (napari_mmrecon.io.ovf)."""

import importlib.util
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from napari_mmrecon.backend.physics.grid import Grid
from napari_mmrecon.io.ovf import OVFError, accepts_ovf, read_ovf, write_ovf

DATA = Path(__file__).resolve().parent / "data" / "ovf"
"""OVF files of mumax3, OOMMF and discretisedfield, and two made here (see ORIGINS.md there)."""

GRID = Grid(7, 5, 3, 2e-9, 3e-9, 1.5e-9)

FLOAT32_RTOL = 2e-7


def real(name: str) -> Path:
    """Path of a test file in ``DATA``; fails clearly when it is missing."""
    path = DATA / name
    assert path.is_file(), f"missing OVF test file {path}"
    return path


def data_span(raw: bytes) -> tuple[int, int]:
    """Byte offsets of the first data byte and of the '# End: Data' line."""
    begin = re.search(rb"# Begin: Data[^\n]*\n", raw)
    return begin.end(), raw.rindex(b"# End: Data")


def grid_tuple(grid: Grid) -> tuple:
    return (grid.nx, grid.ny, grid.nz, grid.dx, grid.dy, grid.dz)


def random_field(components: int | None, seed: int = 7) -> np.ndarray:
    shape = GRID.shape if components is None else GRID.shape + (components,)
    return np.random.default_rng(seed).normal(scale=3.0, size=shape)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("fmt", ["text", "binary4", "binary8"])
def test_round_trip_vector(tmp_path, fmt, version):
    data = random_field(3)
    path = tmp_path / f"v{version}_{fmt}.ovf"
    write_ovf(path, data, GRID, fmt=fmt, version=version, title="m", value_units="A/m", desc=["one", "two"])
    back, grid, header = read_ovf(path, return_header=True)
    expected = data.astype(np.float32).astype(np.float64) if fmt == "binary4" else data
    assert back.dtype == np.float64 and back.shape == (3, 5, 7, 3)
    np.testing.assert_array_equal(back, expected)
    assert grid_tuple(grid) == grid_tuple(GRID)
    assert header["version"] == version and header["format"] == fmt
    assert header["title"] == "m" and header["desc"] == ["one", "two"]
    assert header["meshtype"] == "rectangular" and header["meshunit"] == "m"
    assert (header["xbase"], header["ymax"]) == (1e-9, 15e-9)
    if version == 2:
        assert header["valuelabels"] == ["m_x", "m_y", "m_z"]
        assert header["valueunits"] == ["A/m"] * 3
    else:
        assert header["valueunit"] == "A/m" and header["valuemultiplier"] == 1.0


@pytest.mark.parametrize("fmt", ["text", "binary4", "binary8"])
def test_round_trip_scalar_and_valuedim_6(tmp_path, fmt):
    scalar, tensor = random_field(None, seed=1), random_field(6, seed=2)
    write_ovf(tmp_path / "s.ovf", scalar, GRID, fmt=fmt, title="Total energy density", value_units="J/m^3")
    write_ovf(tmp_path / "t.ovf", tensor, GRID, fmt=fmt, value_labels=list("abcdef"))
    back_s, grid_s, header_s = read_ovf(tmp_path / "s.ovf", return_header=True)
    back_t, grid_t, header_t = read_ovf(tmp_path / "t.ovf", return_header=True)
    cast = (lambda a: a.astype(np.float32).astype(np.float64)) if fmt == "binary4" else (lambda a: a)
    assert back_s.shape == (3, 5, 7) and back_t.shape == (3, 5, 7, 6)
    np.testing.assert_array_equal(back_s, cast(scalar))
    np.testing.assert_array_equal(back_t, cast(tensor))
    assert grid_tuple(grid_s) == grid_tuple(grid_t) == grid_tuple(GRID)
    assert header_s["valuelabels"] == ["Total energy density"] and header_s["valueunits"] == ["J/m^3"]
    assert header_t["valuelabels"] == list("abcdef") and header_t["valueunits"] == [""] * 6


@pytest.mark.parametrize("version, order", [(1, ">"), (2, "<")])
def test_written_binary_layout_is_x_fastest_with_check_value(tmp_path, version, order):
    data = random_field(3, seed=3)
    path = tmp_path / "layout.ovf"
    write_ovf(path, data, GRID, fmt="binary8", version=version)
    raw = path.read_bytes()
    first_line = raw.split(b"\n", 1)[0]
    assert first_line == (b"# OOMMF OVF 2.0" if version == 2 else b"# OOMMF: rectangular mesh v1.0")
    start, _ = data_span(raw)
    count = 7 * 5 * 3 * 3
    values = struct.unpack(f"{order}{count + 1}d", raw[start : start + 8 * (count + 1)])
    assert values[0] == 123456789012345.0
    for z, y, x, c in [(0, 0, 1, 0), (2, 4, 6, 2), (1, 3, 2, 1), (2, 0, 5, 0)]:
        assert values[1 + ((z * 5 + y) * 7 + x) * 3 + c] == data[z, y, x, c]
    assert raw[start + 8 * (count + 1) :] == b"\n# End: Data Binary 8\n# End: Segment\n"


def test_write_accepts_torch_tensor(tmp_path):
    data = torch.randn(3, 5, 7, 3, dtype=torch.float64, requires_grad=True)
    write_ovf(tmp_path / "t.ovf", data, GRID)
    back, _ = read_ovf(tmp_path / "t.ovf")
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, data.detach().numpy())


def test_write_rejects_wrong_shape_naming_expected_shape(tmp_path):
    with pytest.raises(ValueError, match=re.escape("(3, 5, 7, 3)")):
        write_ovf(tmp_path / "bad.ovf", np.zeros((3, 7, 5, 3)), GRID)
    assert not (tmp_path / "bad.ovf").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fmt": "binary2"}, "fmt"),
        ({"version": 3}, "version"),
        ({"version": 1, "data": np.zeros((3, 5, 7))}, "3-component"),
        ({"value_labels": ["a", "b"]}, "value_labels"),
        ({"value_units": ["A/m", "T", "T"], "version": 1}, "single valueunit"),
        ({"title": "two\nlines"}, "title"),
    ],
)
def test_write_rejects_bad_arguments(tmp_path, kwargs, message):
    kwargs = {"data": np.zeros((3, 5, 7, 3)), **kwargs}
    data = kwargs.pop("data")
    with pytest.raises(ValueError, match=message):
        write_ovf(tmp_path / "bad.ovf", data, GRID, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_failed_write_keeps_previous_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    import napari_mmrecon.io.ovf as ovf

    path = tmp_path / "m.ovf"
    write_ovf(path, random_field(3), GRID)
    before = path.read_bytes()

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ovf, "_data_binary", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write_ovf(path, np.zeros((3, 5, 7, 3)), GRID)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.ovf"]


# ------------------------------------------------------------ header dialects


def write_text_ovf(path: Path, header_lines: list[str], data_lines: list[str], newline: str = "\n") -> Path:
    lines = header_lines + ["# Begin: data text"] + data_lines + ["# End: data text", "# End: segment"]
    path.write_bytes((newline.join(lines) + newline).encode())
    return path


HEADER_NM = [
    "# OOMMF OVF 2.0",
    "## a comment line",
    "#",
    "# Segment Count: 1",
    "# Begin: Segment",
    "# Begin: Header",
    "# Title: hand written: with colon  ## trailing comment",
    "# MeshType: Rectangular",
    "#\tMesh Unit: nm",
    "# XNodes: 2",
    "# ynodes: 1",
    "# znodes: 1",
    "# xStepSize: 2",
    "# ystepsize: 3",
    "# zstepsize: 0.5",
    "# valuedim: 3",
    "# valuelabels: {m x} {} m_z",
    "# valueunits: {}",
    "# End: Header",
]


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_header_dialect_keys_units_comments(tmp_path, newline):
    path = write_text_ovf(tmp_path / "d.ovf", HEADER_NM, ["1 2 3 ## first cell", "", "\t4e0  5 6.0"], newline)
    data, grid, header = read_ovf(path, return_header=True)
    np.testing.assert_array_equal(data, [[[[1, 2, 3], [4, 5, 6]]]])
    assert grid_tuple(grid) == (2, 1, 1, 2e-9, 3e-9, 0.5e-9)
    assert header["title"] == "hand written: with colon"
    assert header["meshunit"] == "nm" and header["segmentcount"] == 1
    assert header["valuelabels"] == ["m x", "", "m_z"] and header["valueunits"] == [""]


def test_ovf1_valuemultiplier_is_applied(tmp_path):
    header = [
        "# OOMMF: rectangular mesh v1.0", "# Segment count: 1", "# Begin: Segment", "# Begin: Header",
        "# meshtype: rectangular", "# meshunit: um", "# xnodes: 1", "# ynodes: 1", "# znodes: 1",
        "# xstepsize: 0.01", "# ystepsize: 0.01", "# zstepsize: 0.002",
        "# valueunit: A/m", "# valuemultiplier: 800000", "# End: Header",
    ]
    data, grid = read_ovf(write_text_ovf(tmp_path / "v1.omf", header, ["0.6 0 -0.8"]))
    np.testing.assert_allclose(data, [[[[480000.0, 0.0, -640000.0]]]], rtol=1e-15)
    np.testing.assert_allclose(grid.cell_size, (1e-8, 1e-8, 2e-9), rtol=1e-15)


@pytest.mark.parametrize(
    "change, message",
    [
        (("# Mesh Unit: nm", "# meshunit: furlong"), "meshunit"),
        (("# MeshType: Rectangular", "# meshtype: irregular"), "irregular"),
        (("# Segment Count: 1", "# segment count: 2"), "segments"),
        (("# XNodes: 2", "# xnodes: two"), "xnodes"),
        (("# xStepSize: 2", "# xstepsize: -2"), "mesh"),
        (("# valuedim: 3", "# valuedim: 0"), "valuedim"),
    ],
)
def test_header_problems_raise_ovf_error(tmp_path, change, message):
    lines = [change[1] if line.replace("\t", " ") == change[0].replace("\t", " ") else line for line in HEADER_NM]
    assert lines != HEADER_NM
    path = write_text_ovf(tmp_path / "bad_header.ovf", lines, ["1 2 3 4 5 6"])
    with pytest.raises(OVFError, match=message) as info:
        read_ovf(path)
    assert "bad_header.ovf" in str(info.value)


def test_irregular_ovf1_and_non_ovf_files(tmp_path):
    irregular = tmp_path / "irregular.omf"
    irregular.write_bytes(b"# OOMMF: irregular mesh v1.0\n# Segment count: 1\n")
    with pytest.raises(OVFError, match="irregular.omf.*irregular"):
        read_ovf(irregular)
    png = tmp_path / "image.ovf"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(OVFError, match="image.ovf: not an OVF file"):
        read_ovf(png)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.ovf"):
        read_ovf(tmp_path / "nothing.ovf")


# ------------------------------------------------------------ numbers that float() takes


@pytest.mark.parametrize("token", ["nan", "NaN", "inf", "-Infinity", "1_0", "0x10", "\u0661", "1e", "1.2.3"])
def test_text_data_takes_only_decimal_numbers(tmp_path, token):
    """float() reads 'nan', 'inf' and '1_0' (= 10.0); an OVF file never holds them."""
    path = write_text_ovf(tmp_path / "tokens.ovf", HEADER_NM, ["1 2 3", f"4 {token} 6"])
    with pytest.raises(OVFError, match=re.escape(f"tokens.ovf: garbled number {token!r} in text data at line 22")):
        read_ovf(path)


@pytest.mark.parametrize("token", ["1e999", "-1e309"])
def test_text_data_overflowing_to_infinity_raises(tmp_path, token):
    path = write_text_ovf(tmp_path / "huge.ovf", HEADER_NM, ["1 2 3", f"4 5 {token}"])
    with pytest.raises(OVFError, match=re.escape("huge.ovf: 1 value(s) in the data are not finite")
                       + r".*index \(0, 0, 1, 2\)"):
        read_ovf(path)


V1_HEADER = [
    "# OOMMF: rectangular mesh v1.0", "# Segment count: 1", "# Begin: Segment", "# Begin: Header",
    "# meshtype: rectangular", "# meshunit: nm", "# xnodes: 1", "# ynodes: 1", "# znodes: 1",
    "# xstepsize: 1", "# ystepsize: 1", "# zstepsize: 1", "# valueunit: A/m", "# valuemultiplier: 2",
    "# End: Header",
]


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("valuemultiplier", "nan", "non-numeric value 'nan'"),
        ("valuemultiplier", "inf", "non-numeric value 'inf'"),
        ("valuemultiplier", "1_0", "non-numeric value '1_0'"),
        ("valuemultiplier", "1e999", "out of the float range: '1e999'"),
        ("xstepsize", "-1e400", "out of the float range"),
        ("xnodes", "1_0", "non-numeric value '1_0' (an integer expected)"),
        ("xnodes", "\uff11", "non-numeric value"),
        ("xnodes", "1.0", "non-numeric value '1.0'"),
    ],
)
def test_header_numbers_must_be_plain_and_finite(tmp_path, key, value, message):
    lines = [f"# {key}: {value}" if line.startswith(f"# {key}:") else line for line in V1_HEADER]
    assert lines != V1_HEADER
    path = write_text_ovf(tmp_path / "header.omf", lines, ["0.6 0 -0.8"])
    with pytest.raises(OVFError, match=re.escape(f"header.omf: header key {key!r} has a ") + ".*" + re.escape(message)):
        read_ovf(path)


def test_valuemultiplier_overflow_raises(tmp_path):
    lines = [line.replace("valuemultiplier: 2", "valuemultiplier: 1e10") for line in V1_HEADER]
    path = write_text_ovf(tmp_path / "overflow.omf", lines, ["1e300 0 -1e300"])
    with pytest.raises(OVFError, match=r"overflow.omf: 2 value\(s\) in the data are not finite.*\(0, 0, 0, 0\)"):
        read_ovf(path)


@pytest.mark.parametrize("version", [1, 2])
@pytest.mark.parametrize("fmt", ["binary4", "binary8"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_binary_value_raises_with_its_index(tmp_path, fmt, version, bad):
    path = tmp_path / "nan.ovf"
    write_ovf(path, random_field(3), GRID, fmt=fmt, version=version)
    raw = bytearray(path.read_bytes())
    start, _ = data_span(bytes(raw))
    size = {"binary4": 4, "binary8": 8}[fmt]
    order = "<" if version == 2 else ">"
    index = 1 + ((2 * 5 + 3) * 7 + 4) * 3 + 1  # value (z, y, x, c) = (2, 3, 4, 1) after the check value
    raw[start + size * index : start + size * (index + 1)] = struct.pack(order + "fd"[size == 8], bad)
    path.write_bytes(bytes(raw))
    with pytest.raises(OVFError, match=r"nan.ovf: 1 value\(s\) in the data are not finite.*\(2, 3, 4, 1\)"):
        read_ovf(path)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_write_refuses_non_finite_data_and_writes_nothing(tmp_path, bad):
    data = random_field(3)
    data[1, 2, 3, 0] = bad
    with pytest.raises(ValueError, match="OVF data must be finite"):
        write_ovf(tmp_path / "bad.ovf", data, GRID)
    assert list(tmp_path.iterdir()) == []


def test_accepts_ovf_looks_at_the_first_line_only(tmp_path):
    for name in REAL_FILES:
        assert accepts_ovf(real(name)), name
    cases = {
        "spaced.ovf": (b"#   oommf   OVF 2.0\n# garbage follows\n", True),
        "truncated.omf": (b"# OOMMF: rectangular mesh v1.0\n", True),
        "png.ovf": (b"\x89PNG\r\n\x1a\n" + bytes(100), False),
        "text.ovf": (b"x y z mx my mz\n0 0 0 1 0 0\n", False),
        "empty.ovf": (b"", False),
    }
    for name, (content, expected) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert accepts_ovf(tmp_path / name) is expected, name
    assert accepts_ovf(tmp_path / "absent.ovf") is False
    assert accepts_ovf(tmp_path) is False


# ------------------------------------------------------------ real files

GEOMETRY = "synthetic_mumax3-layout_ovf2_bin4_geom_scalar_40x25x20.ovf"
"""A mumax3-layout scalar Binary 4 file made by make_synthetic_ovf.py (for a GPL-3.0 mumax3 file)."""
MMSOLVE = "synthetic_mmsolve-layout_ovf1_text_m_25x10x1.omf"
"""An OOMMF mmSolve-layout OVF 1.0 text file made by make_synthetic_ovf.py (for a GPL-3.0 copy)."""

REAL_FILES = {
    # name: (version, format, (nx, ny, nz), (dx, dy, dz), valuedim, title); all but the two
    # synthetic ones are unchanged output of the writing programs
    "mumax3_ovf2_bin4_m_128x32x1.ovf": (2, "binary4", (128, 32, 1), (3.90625e-9, 3.90625e-9, 3e-9), 3, "m"),
    "mumax3_ovf2_text_mfull_24x12x4.ovf": (2, "text", (24, 12, 4), (2.5e-9,) * 3, 3, "m_full"),
    GEOMETRY: (2, "binary4", (40, 25, 20), (5e-9,) * 3, 1, "geom"),
    "oommf_ovf2_bin8_spin_200x50x1.omf": (2, "binary8", (200, 50, 1), (2.5e-9, 2.5e-9, 3e-9), 3, "Oxs_MinDriver::Spin"),
    "oommf_ovf2_bin4_m_5x5x5.omf": (2, "binary4", (5, 5, 5), (1e-9,) * 3, 3, "Oxs_MinDriver::Magnetization"),
    "oommf_ovf2_text_skyrmion_20x20x2.omf": (2, "text", (20, 20, 2), (5e-9,) * 3, 3, "Oxs_MinDriver::Magnetization"),
    "oommf_ovf2_bin8_energydensity_scalar_1x1x1.oef": (
        2, "binary8", (1, 1, 1), (1e-9,) * 3, 1, "Oxs_RungeKuttaEvolve:evolver:Total energy density",
    ),
    "oommf_ovf1_bin4_m_24x8x4.omf": (1, "binary4", (24, 8, 4), (1e-8,) * 3, 3, None),
    "oommf_ovf1_bin8_spin_36x20x1.omf": (1, "binary8", (36, 20, 1), (3.6e-9, 3.6e-9, 3e-9), 3, None),
    MMSOLVE: (1, "text", (25, 10, 1), (2e-8,) * 3, 3, None),
    "discretisedfield_ovf2_bin8_demagtensor_valuedim6_20x10x3.omf": (2, "binary8", (20, 10, 3), (1.0,) * 3, 6, "Field"),
}


def norms(data: np.ndarray) -> np.ndarray:
    return np.linalg.norm(data, axis=-1)


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_file_shape_grid_and_header(name):
    version, fmt, (nx, ny, nz), cell, valuedim, title = REAL_FILES[name]
    data, grid, header = read_ovf(real(name), return_header=True)
    shape = (nz, ny, nx) if valuedim == 1 else (nz, ny, nx, valuedim)
    assert data.shape == shape and data.dtype == np.float64
    assert np.all(np.isfinite(data))
    assert (grid.nx, grid.ny, grid.nz) == (nx, ny, nz)
    np.testing.assert_allclose(grid.cell_size, cell, rtol=1e-15)
    assert (header["version"], header["format"]) == (version, fmt)
    if title is not None:
        assert header["title"] == title


@pytest.mark.parametrize(
    "name", ["mumax3_ovf2_bin4_m_128x32x1.ovf", "oommf_ovf2_bin8_spin_200x50x1.omf", "oommf_ovf1_bin8_spin_36x20x1.omf"]
)
def test_real_unit_vector_files_have_unit_norm(name):
    data, _ = read_ovf(real(name))
    np.testing.assert_allclose(norms(data), 1.0, rtol=FLOAT32_RTOL)


def test_mumax3_uniform_m_and_m_full_point_along_10_1_0():
    """Both mumax3 files hold Uniform(1, 0.1, 0); m_full implies Ms = 1 A/m."""
    direction = np.array([1.0, 0.1, 0.0]) / np.linalg.norm([1.0, 0.1, 0.0])
    for name in ("mumax3_ovf2_bin4_m_128x32x1.ovf", "mumax3_ovf2_text_mfull_24x12x4.ovf"):
        data, _ = read_ovf(real(name))
        np.testing.assert_allclose(data.reshape(-1, 3), np.broadcast_to(direction, (data[..., 0].size, 3)),
                                   rtol=FLOAT32_RTOL, atol=0)
    m_full, _, header = read_ovf(real("mumax3_ovf2_text_mfull_24x12x4.ovf"), return_header=True)
    assert header["valueunits"] == ["A/m"] * 3
    np.testing.assert_allclose(norms(m_full), 1.0, rtol=FLOAT32_RTOL)


def test_ovf1_valuemultiplier_gives_magnetization_in_a_per_m():
    for name, multiplier, cells in [(MMSOLVE, 800000.0, 250),
                                    ("oommf_ovf1_bin4_m_24x8x4.omf", 800000.00000000035, 440)]:
        data, _, header = read_ovf(real(name), return_header=True)
        assert header["valuemultiplier"] == multiplier and header["valueunit"] == "A/m"
        magnitudes = norms(data)
        filled = magnitudes > 0
        assert filled.sum() == cells
        np.testing.assert_allclose(magnitudes[filled], multiplier, rtol=FLOAT32_RTOL)


def test_ovf1_big_endian_ellipsoid_fills_the_inscribed_ellipsoid():
    """ellipsoid.mif: M = 8e5 A/m inside the ellipsoid inscribed in 240 x 80 x 40 nm, 0 outside."""
    data, grid = read_ovf(real("oommf_ovf1_bin4_m_24x8x4.omf"))
    x, y, z = ((c / s) * 2 - 1 for c, s in zip(grid.cell_centers(), grid.size))
    inside = z[:, None, None] ** 2 + y[None, :, None] ** 2 + x[None, None, :] ** 2 <= 1
    np.testing.assert_array_equal(norms(data) > 0, inside)


def test_oommf_magnetization_files_have_constant_ms():
    cube, _ = read_ovf(real("oommf_ovf2_bin4_m_5x5x5.omf"))
    np.testing.assert_allclose(norms(cube), 8e6, rtol=FLOAT32_RTOL)
    np.testing.assert_array_equal(cube[0, 0, 0], cube[4, 4, 4])


def test_oommf_skyrmion_disk_mask_and_core():
    """skyrmion.mif: Ms = 1.1e6 A/m in a disk of radius 50 nm around the origin, core down."""
    data, _, header = read_ovf(real("oommf_ovf2_text_skyrmion_20x20x2.omf"), return_header=True)
    assert header["xmin"] < 0 and header["ymin"] < 0
    x = header["xbase"] + np.arange(20) * header["xstepsize"]
    y = header["ybase"] + np.arange(20) * header["ystepsize"]
    disk = np.hypot(x[None, :], y[:, None]) <= 50e-9
    magnitudes = norms(data)
    np.testing.assert_array_equal(magnitudes > 0, np.broadcast_to(disk, (2, 20, 20)))
    np.testing.assert_allclose(magnitudes[magnitudes > 0], 1.1e6, rtol=1e-6)
    assert np.all(data[:, 9:11, 9:11, 2] < -1.0e6)
    assert data[0, 0, 10, 2] > 1.0e6


def test_oommf_stdprob4_s_state_is_point_symmetric():
    """The relaxed S-state has m(x, y) = m(-x, -y) in-plane; a wrong axis order breaks it."""
    data, _ = read_ovf(real("oommf_ovf2_bin8_spin_200x50x1.omf"))
    np.testing.assert_allclose(data[..., :2], data[:, ::-1, ::-1, :2], atol=1e-12)
    assert np.abs(data[..., 2]).max() < 1e-9
    assert 0.9 < data[..., 0].mean() < 1.0


def test_mumax3_layout_geometry_mask_is_a_dome():
    """The mumax3-layout geometry (1 inside, 0 outside) is the half-ellipsoid dome of
    make_synthetic_ovf.py, re-derived here in half-cell units: semi-axes 36, 22, 28 along
    x, y, z around the middle of the film's bottom."""
    data, _ = read_ovf(real(GEOMETRY))
    assert set(np.unique(data)) == {0.0, 1.0}
    per_y = data.sum(axis=(0, 2))
    assert np.abs(per_y - per_y[::-1]).max() <= 1
    per_z = data.sum(axis=(1, 2))
    assert per_z[-1] == 0 and per_z[0] > 0
    k, j, i = np.indices(data.shape)
    x, y, z = 2 * i + 1 - 40, 2 * j + 1 - 25, 2 * k + 1
    a, b, c = 36, 22, 28
    dome = (x * b * c) ** 2 + (y * a * c) ** 2 + (z * a * b) ** 2 <= (a * b * c) ** 2
    np.testing.assert_array_equal(data == 1.0, dome)


def test_synthetic_files_are_what_their_script_writes(tmp_path):
    """ORIGINS.md says make_synthetic_ovf.py made the two synthetic files; it still does."""
    spec = importlib.util.spec_from_file_location("make_synthetic_ovf", DATA / "make_synthetic_ovf.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    script.write_all(tmp_path)
    for name in (GEOMETRY, MMSOLVE):
        assert (tmp_path / name).read_bytes() == real(name).read_bytes()


def test_every_data_file_has_its_origin_and_licence_stated():
    origins = (DATA / "ORIGINS.md").read_text()
    files = sorted(path.name for path in DATA.iterdir() if path.suffix in (".ovf", ".omf", ".oef"))
    assert files == sorted(REAL_FILES)
    for name in files:
        assert f"`{name}`" in origins, name


def test_energy_density_scalar_matches_raw_little_endian_double():
    path = real("oommf_ovf2_bin8_energydensity_scalar_1x1x1.oef")
    raw = path.read_bytes()
    start, _ = data_span(raw)
    check, value = struct.unpack("<2d", raw[start : start + 16])
    assert check == 123456789012345.0
    data, _, header = read_ovf(path, return_header=True)
    assert data.shape == (1, 1, 1) and data[0, 0, 0] == value
    assert header["valuelabels"] == ["Total energy density"] and header["valueunits"] == ["J/m^3"]


def test_demag_tensor_valuedim_6():
    """Cell-averaged demag tensor of cubic cells: trace = overlap (1 at the self term, 0 else)."""
    data, _, header = read_ovf(real("discretisedfield_ovf2_bin8_demagtensor_valuedim6_20x10x3.omf"), True)
    assert data.shape == (3, 10, 20, 6)
    assert header["valuelabels"] == ["field_xx", "field_yy", "field_zz", "field_xy", "field_xz", "field_yz"]
    trace = data[..., :3].sum(axis=-1)
    np.testing.assert_allclose(data[0, 0, 0], [1 / 3, 1 / 3, 1 / 3, 0, 0, 0], atol=1e-15)
    assert np.abs(trace.reshape(-1)[1:]).max() < 1e-12
    for (z, y, x), axis in [((0, 0, 1), 0), ((0, 1, 0), 1), ((1, 0, 0), 2)]:
        diagonal = data[z, y, x, :3]
        others = np.delete(diagonal, axis)
        assert diagonal[axis] < 0 and others[0] == pytest.approx(others[1], rel=1e-12)
        assert diagonal[axis] == pytest.approx(-2 * others[0], rel=1e-12)
    assert np.abs(data[2, 9, 19]).max() < 1e-4
    assert np.abs(data[:, 0, :, 3]).max() < 1e-15 and np.abs(data[0, :, :, 4:]).max() < 1e-15


@pytest.mark.parametrize(
    "name, order, multiplier",
    [("oommf_ovf2_bin4_m_5x5x5.omf", "<", 1.0), ("oommf_ovf1_bin4_m_24x8x4.omf", ">", 800000.00000000035)],
)
def test_bin4_values_match_independent_raw_parse(name, order, multiplier):
    path = real(name)
    data, grid = read_ovf(path)
    raw = path.read_bytes()
    start, _ = data_span(raw)
    count = grid.nx * grid.ny * grid.nz * 3
    values = struct.unpack(f"{order}{count + 1}f", raw[start : start + 4 * (count + 1)])
    assert values[0] == 1234567.0
    index = 1
    for z in range(grid.nz):
        for y in range(grid.ny):
            for x in range(grid.nx):
                for c in range(3):
                    assert data[z, y, x, c] == values[index] * multiplier
                    index += 1


def independent_parse(path: Path) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Values (as ``read_ovf`` lays them out) and cell size of an OVF file, parsed here directly:
    ``# key: value`` header lines, x-fastest data (little-endian for OVF 2.0, big-endian for 1.0),
    the ``valuemultiplier`` of OVF 1.0 applied; the file's own check value is verified."""
    raw = path.read_bytes()
    start, end = data_span(raw)
    header = {}
    for line in raw[:start].decode("latin-1").splitlines():
        key, _, value = line.lstrip("#").partition(":")
        header.setdefault(key.strip().lower(), value.strip())
    nx, ny, nz = (int(header[f"{axis}nodes"]) for axis in "xyz")
    valuedim = int(header.get("valuedim", 3))
    count = nx * ny * nz * valuedim
    kind = re.search(rb"# Begin: Data ([^\n]*)\n", raw).group(1).decode().split()  # ["Text"], ["Binary", "4"]
    if kind[0].lower() == "text":
        numbers = [float(word) for line in raw[start:end].decode().splitlines()
                   if not line.lstrip().startswith("#") for word in line.split("#")[0].split()]
        values = np.array(numbers)
    else:
        size = int(kind[-1])
        order = "<" if raw.startswith(b"# OOMMF OVF 2.0") else ">"
        code = {4: "f", 8: "d"}[size]
        check, *numbers = struct.unpack(f"{order}{count + 1}{code}", raw[start : start + size * (count + 1)])
        assert check == {4: 1234567.0, 8: 123456789012345.0}[size]
        values = np.array(numbers, dtype=np.float64)
    assert values.size == count
    values = values * float(header.get("valuemultiplier", 1.0))
    shape = (nz, ny, nx) if valuedim == 1 else (nz, ny, nx, valuedim)
    return values.reshape(shape), tuple(float(header[f"{axis}stepsize"]) for axis in "xyz")


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_real_file_values_and_cell_size_equal_an_independent_parse(name):
    """Every real file, text and binary, both byte orders: the exact values and cell size its
    header and data block state (all headers here use meshunit m)."""
    data, grid = read_ovf(real(name))
    values, cell = independent_parse(real(name))
    assert data.shape == values.shape
    np.testing.assert_array_equal(data, values)
    assert grid.cell_size == cell


# ------------------------------------------------------------ damaged copies


def damaged_copy(tmp_path: Path, name: str, change) -> Path:
    raw = real(name).read_bytes()
    path = tmp_path / f"damaged_{name}"
    path.write_bytes(change(raw))
    return path


def truncate_mid_data(raw: bytes) -> bytes:
    start, end = data_span(raw)
    return raw[: (start + end) // 2]


def drop_key(key: bytes):
    return lambda raw: re.sub(rb"(?m)^# " + key + rb":[^\n]*\n", b"", raw, count=1)


def corrupt_check_value(raw: bytes) -> bytes:
    start, _ = data_span(raw)
    return raw[:start] + bytes([raw[start] ^ 0x01]) + raw[start + 1 :]


def drop_end_data(raw: bytes) -> bytes:
    return re.sub(rb"\n?# End: Data[^\n]*\n", b"\n", raw)


def garble_number(raw: bytes) -> bytes:
    start, end = data_span(raw)
    block = re.sub(rb"[-+0-9.eE]+", b"abc", raw[start:end], count=1)
    return raw[:start] + block + raw[end:]


DAMAGE = {
    "truncated": (truncate_mid_data, "truncated"),
    "no_xnodes": (drop_key(b"xnodes"), "xnodes"),
    "no_zstepsize": (drop_key(b"zstepsize"), "zstepsize"),
    "no_end_data": (drop_end_data, "End: Data"),
    "cut_header": (lambda raw: raw[: raw.index(b"# Begin: Data")], "Begin: Data"),
}

BINARY_FILES = sorted(name for name, spec in REAL_FILES.items() if spec[1] != "text")
TEXT_FILES = sorted(name for name, spec in REAL_FILES.items() if spec[1] == "text")


@pytest.mark.parametrize("damage", sorted(DAMAGE))
@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_damaged_real_files_raise_ovf_error_naming_file(tmp_path, name, damage):
    change, message = DAMAGE[damage]
    path = damaged_copy(tmp_path, name, change)
    assert path.read_bytes() != real(name).read_bytes()
    with pytest.raises(OVFError, match=re.escape(message)) as info:
        read_ovf(path)
    assert path.name in str(info.value)


@pytest.mark.parametrize("name", BINARY_FILES)
def test_corrupt_check_value_raises(tmp_path, name):
    path = damaged_copy(tmp_path, name, corrupt_check_value)
    with pytest.raises(OVFError, match="check value") as info:
        read_ovf(path)
    assert path.name in str(info.value)


@pytest.mark.parametrize("name", TEXT_FILES)
def test_garbled_text_number_raises(tmp_path, name):
    path = damaged_copy(tmp_path, name, garble_number)
    with pytest.raises(OVFError, match="garbled.*abc") as info:
        read_ovf(path)
    assert path.name in str(info.value)


def test_ovf2_file_with_big_endian_data_fails_the_check_value(tmp_path):
    raw = real("oommf_ovf2_bin4_m_5x5x5.omf").read_bytes()
    start, end = data_span(raw)
    swapped = np.frombuffer(raw[start:end - 1], dtype="<f4").astype(">f4").tobytes()
    path = tmp_path / "swapped.omf"
    path.write_bytes(raw[:start] + swapped + raw[end - 1 :])
    with pytest.raises(OVFError, match="swapped.omf.*check value.*little-endian"):
        read_ovf(path)
