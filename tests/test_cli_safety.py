"""Nothing lost: mmrecon never writes over its input, replaces an existing result only with
--overwrite, and checks every file it will write before it computes or writes anything."""

import os
from pathlib import Path

import numpy as np
import pytest

import napari_mmrecon as mm
from napari_mmrecon.cli import main


def small_state(path: Path) -> Path:
    """A 16 x 16 skyrmion texture as OVF (not relaxed: these tests stop before any relaxation)."""
    grid = mm.Grid(nx=16, ny=16, nz=1, dx=1e-9, dy=1e-9, dz=1e-9)
    path.parent.mkdir(parents=True, exist_ok=True)
    mm.write_ovf(path, mm.textures.skyrmion(grid, radius=4e-9), grid)
    return path


def small_target(path: Path) -> Path:
    """A 16 x 16 Hz image as mmrecon simulate writes it (metadata with its height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(0).normal(size=(16, 16))
    mm.write_tiff(path, image, 1e-9, metadata={"quantity": "Hz", "unit": "A/m", "side": "top", "height": 5e-9})
    return path


def refused(arguments, capsys) -> str:
    """Run ``mmrecon`` expecting exit code 2; return its one-line message."""
    assert main(arguments) == 2, arguments
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_relax_never_writes_over_its_input(tmp_path, capsys):
    state = small_state(tmp_path / "in.ovf")
    before = state.read_bytes()
    (tmp_path / "link.ovf").symlink_to(state)
    os.link(state, tmp_path / "hard.ovf")
    for out in (state, tmp_path / "link.ovf", tmp_path / "hard.ovf", tmp_path / "sub" / ".." / "in.ovf"):
        for overwrite in ([], ["--overwrite"]):
            err = refused(["relax", str(state), "-o", str(out), "--quiet", *overwrite], capsys)
            assert err.startswith("mmrecon relax: error: ") and "is an input of this command" in err, err
    assert state.read_bytes() == before


def test_simulate_never_writes_over_its_input(tmp_path, capsys):
    state = small_state(tmp_path / "X" / "m.ovf")
    before = state.read_bytes()
    err = refused(["simulate", str(state), "-o", str(tmp_path / "X"), "--overwrite", "--quiet"], capsys)
    assert "m.ovf is an input of this command" in err
    assert state.read_bytes() == before and sorted(os.listdir(tmp_path / "X")) == ["m.ovf"]


def test_fit_never_writes_over_its_target_or_m0(tmp_path, capsys):
    target = small_target(tmp_path / "fo" / "simulated.tif")
    before = target.read_bytes()
    err = refused(["fit", str(target), "-o", str(tmp_path / "fo"), "--overwrite", "--quiet"], capsys)
    assert "simulated.tif is an input of this command" in err
    assert target.read_bytes() == before
    m0 = small_state(tmp_path / "out" / "m_fitted.ovf")
    err = refused(["fit", str(target), "--m0", str(m0), "-o", str(tmp_path / "out"), "--overwrite", "--quiet"],
                  capsys)
    assert "m_fitted.ovf is an input of this command" in err
    assert sorted(os.listdir(tmp_path / "out")) == ["m_fitted.ovf"]


def test_relax_replaces_an_existing_file_only_with_overwrite(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    err = refused(["relax", "--n", "16", "-o", str(notes), "--overwrite", "--quiet"], capsys)
    assert "relax writes one OVF file, give a name ending in .ovf" in err
    old = tmp_path / "old.ovf"
    old.write_text("a hand-made state\n")
    err = refused(["relax", "--n", "16", "-o", str(old), "--quiet"], capsys)
    assert err.endswith("old.ovf exists already: give --overwrite to replace it, or another -o")
    assert notes.read_text() == "my notes\n" and old.read_text() == "a hand-made state\n"
    assert main(["relax", "--n", "16", "--tol", "1e-2", "-o", str(old), "--overwrite", "--quiet"]) == 0
    assert "(replaced, --overwrite)" in capsys.readouterr().out
    assert mm.read_ovf(old)[0].shape == (1, 16, 16, 3)


def test_simulate_twice_lists_what_it_would_replace(tmp_path, capsys):
    out = tmp_path / "sim"
    arguments = ["simulate", "--n", "16", "--heights", "1e-8", "--outputs", "Hz", "-o", str(out), "--quiet"]
    assert main(arguments) == 0
    written = {path.name: path.stat().st_mtime_ns for path in out.iterdir()}
    err = refused(arguments, capsys)
    assert err.endswith(f"3 files exist already in {out}: m.ovf, Hz_top_10nm.tif, figure.png: give --overwrite to "
                        "replace them, or another -o")
    assert {path.name: path.stat().st_mtime_ns for path in out.iterdir()} == written
    assert main(arguments + ["--overwrite"]) == 0
    assert "(3 replaced, --overwrite)" in capsys.readouterr().out


def test_demo_run_twice_keeps_a_hand_edited_table(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "fit").mkdir(parents=True)
    (out / "fit" / "fit_table.tsv").write_text("my corrected table\n")
    (out / "figure.png").write_bytes(b"not yet")
    err = refused(["demo", "-o", str(out), "--quiet"], capsys)
    assert err.startswith("mmrecon demo: error: 2 files exist already in ") and "fit/fit_table.tsv" in err
    assert "figure.png" in err and "give --overwrite" in err
    assert (out / "fit" / "fit_table.tsv").read_text() == "my corrected table\n"
    assert sorted(str(path.relative_to(out)) for path in out.rglob("*")) == ["figure.png", "fit", "fit/fit_table.tsv"]


def test_outputs_under_a_file_or_onto_a_folder_are_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    err = refused(["simulate", "--n", "16", "-o", str(tmp_path / "notes.txt"), "--quiet"], capsys)
    assert err.endswith("notes.txt is a file, not a folder")
    (tmp_path / "state.ovf").mkdir()
    err = refused(["relax", "--n", "16", "-o", str(tmp_path / "state.ovf"), "--overwrite", "--quiet"], capsys)
    assert err.endswith("state.ovf: it is a folder")
    err = refused(["simulate", "--n", "16", "--heights", "1e-8", "1.0000001e-8", "-o", str(tmp_path / "s"), "--quiet"],
                  capsys)
    assert "Hz_top_10nm.tif would be written twice" in err
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "state.ovf"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs a Linux /proc")
def test_a_write_error_names_the_output_not_a_temporary_file(capsys):
    err = refused(["relax", "--n", "16", "--tol", "1e-2", "-o", "/proc/x.ovf", "--quiet"], capsys)
    assert err.startswith("mmrecon relax: error: cannot write /proc/x.ovf: ") and ".tmp" not in err


def test_ctrl_c_is_one_line_and_leaves_no_output(tmp_path, capsys, monkeypatch):
    from napari_mmrecon.workflows import simulate

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate, "texture", interrupted)
    out = tmp_path / "relaxed.ovf"
    assert main(["relax", "--n", "16", "-o", str(out), "--quiet"]) == 130
    assert capsys.readouterr().err.strip() == "mmrecon relax: interrupted"
    assert not out.exists()
