"""Fuzz test of the OVF, TIFF and instrument (SPM) readers over seeded mutations of real and written files.

Each mutant (byte flips, truncation, cut or repeated chunks, header value and TIFF tag edits)
is read in a worker interpreter, ``accepts_*`` first (the reader entry point's peek) and then
``read_*``. Every read must end within ``READ_TIMEOUT_S`` and raise nothing but the reader's
documented error (``OVFError`` / ``TiffError`` / ``InstrumentError``); a worker that does not answer in time is
killed and the mutant named.
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

import napari_mmrecon
from napari_mmrecon.io import write_tiff

SEED = 12
READ_TIMEOUT_S = 15.0
"""Per read; a sound read of these small files takes milliseconds even on slow cores."""

OVF_DATA = Path(__file__).resolve().parent / "data" / "ovf"
OVF_FILES = sorted(path for path in OVF_DATA.iterdir() if path.suffix in (".ovf", ".omf", ".oef"))

INSTRUMENT_DATA = Path(__file__).resolve().parent / "data" / "instrument"
INSTRUMENT_FILES = sorted(path for path in INSTRUMENT_DATA.iterdir() if path.suffix.lower() not in (".py", ".md"))
"""Every instrument file there, whatever its format (the folder holds only test files and their notes)."""

NASTY_VALUES = [b"", b"0", b"-1", b"1_0", b"nan", b"inf", b"-inf", b"1e999", b"1e-320", b"2147483648",
                b"99999999999999999999", b"3.5", b"abc", b"{", b"} {", b"\xff\xfe", b"1e5 2e5"]
"""Replacement header values and data words (the byte strings float() and int() trip on)."""

TAG_VALUES = [0, 1, 2, 3, 7, 255, 256, 65535, 65536, 2**31 - 1, 2**32 - 1]

WORKER = """
import json, sys, time
import napari_mmrecon.backend.physics.grid  # torch, before the timed reads
import napari_mmrecon.io.tiff as tiff
from napari_mmrecon.io.ovf import OVFError, accepts_ovf, read_ovf
from napari_mmrecon.io.instrument import InstrumentError, accepts_instrument, read_instrument

tiff.MAX_IMAGE_BYTES = 64 * 2**20  # no mutant may make this worker allocate gigabytes
READERS = {"ovf": (accepts_ovf, read_ovf, OVFError), "tiff": (tiff.accepts_tiff, tiff.read_tiff, tiff.TiffError),
           "instrument": (accepts_instrument, read_instrument, InstrumentError)}
print("ready", flush=True)
for line in sys.stdin:
    kind, path = json.loads(line)
    accepts, read, documented = READERS[kind]
    start = time.perf_counter()
    try:
        accepted = accepts(path)
        read(path)
        outcome = "read"
    except documented:
        outcome = "documented error"
    except Exception as exc:
        outcome = f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"[:300]
    seconds = time.perf_counter() - start
    print(json.dumps({"outcome": outcome, "accepted": accepted, "seconds": seconds}), flush=True)
"""


class Worker:
    """A fresh interpreter reading one file per request, killed when a read does not end.

    It starts importing at once; ``wait_ready`` waits for the imports to end.
    """

    def __init__(self, log: Path):
        source = str(Path(napari_mmrecon.__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
        self.log = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.log, text=True, env=env)

    def wait_ready(self):
        assert self._answer(120.0, "worker start") == "ready"

    def read(self, kind: str, path: Path, what: str) -> dict:
        """The worker's report on reading ``path``: outcome, whether accepted, seconds."""
        self.process.stdin.write(json.dumps([kind, str(path)]) + "\n")
        self.process.stdin.flush()
        return json.loads(self._answer(READ_TIMEOUT_S, what))

    def _answer(self, timeout: float, what: str) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            self.close()
            pytest.fail(f"{what}: no answer within {timeout:g} s (a hanging read?)")
        line = self.process.stdout.readline()
        if not line:
            self.close()
            pytest.fail(f"{what}: the worker died; its log: {self.log.name}")
        return line.strip()

    def close(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def worker(tmp_path):
    started = Worker(tmp_path / "worker.log")
    yield started
    started.close()


# ----------------------------------------------------------------------------- mutations


def flip_bytes(raw: bytes, rng: random.Random, low: int, high: int) -> bytes:
    """1 to 4 bytes in ``[low, high)`` xor-ed with random non-zero masks."""
    data = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(low, high)] ^= rng.randint(1, 255)
    return bytes(data)


def truncate(raw: bytes, rng: random.Random) -> bytes:
    return raw[: rng.randrange(len(raw))]


def cut_or_repeat_chunk(raw: bytes, rng: random.Random) -> bytes:
    """Remove or duplicate a chunk of 1 to 64 bytes."""
    start = rng.randrange(len(raw))
    end = min(len(raw), start + rng.randint(1, 64))
    return raw[:start] + raw[end:] if rng.random() < 0.5 else raw[:end] + raw[start:]


def ovf_data_start(raw: bytes) -> int:
    return re.search(rb"# Begin: Data[^\n]*\n", raw).end()


def edit_header_value(raw: bytes, rng: random.Random) -> bytes:
    """One ``# key: value`` header line with its value replaced by a nasty one."""
    lines = list(re.finditer(rb"(?m)^#[^:\n]*:[ \t]*([^\n]*)$", raw[: ovf_data_start(raw)]))
    line = rng.choice(lines)
    return raw[: line.start(1)] + rng.choice(NASTY_VALUES) + raw[line.end(1) :]


def edit_text_word(raw: bytes, rng: random.Random) -> bytes:
    """One number of a text data block replaced by a nasty word."""
    start = ovf_data_start(raw)
    words = list(re.finditer(rb"[^\s#]+", raw[start : raw.rindex(b"# End: Data")]))
    word = rng.choice(words)
    return raw[: start + word.start()] + rng.choice(NASTY_VALUES[1:]) + raw[start + word.end() :]


def ovf_mutants(raw: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    header_end = ovf_data_start(raw)
    mutants = [("header flip", flip_bytes(raw, rng, 0, header_end)) for _ in range(3)]
    mutants += [("flip", flip_bytes(raw, rng, 0, len(raw))) for _ in range(2)]
    mutants += [("truncate", truncate(raw, rng)) for _ in range(2)]
    mutants += [("chunk", cut_or_repeat_chunk(raw, rng)) for _ in range(2)]
    mutants += [("header value", edit_header_value(raw, rng)) for _ in range(4)]
    if b"Data Text" in raw[:header_end]:
        mutants += [("text word", edit_text_word(raw, rng)) for _ in range(3)]
    return mutants


def tiff_sources(folder: Path) -> list[Path]:
    """TIFF files of the kinds the reader meets: write_tiff images and stacks, and others."""
    image = np.random.default_rng(SEED).normal(size=(24, 32))
    write_tiff(folder / "image.tif", image, 2e-9, metadata={"quantity": "Hz", "unit": "A/m"})
    write_tiff(folder / "stack.tif", np.stack([image, -image, 2 * image]), 1e-9)
    tifffile.imwrite(folder / "tiled.tif", image.astype(np.float32), tile=(16, 16), compression="zlib",
                     resolution=(1e4, 1e4), resolutionunit="CENTIMETER")
    tifffile.imwrite(folder / "big.tif", image.astype(np.float32), bigtiff=True)
    tifffile.imwrite(folder / "motorola.tif", (image * 100).astype(">u2"), byteorder=">",
                     resolution=(254.0, 254.0), resolutionunit="INCH")
    return sorted(folder.iterdir())


def edit_tag(raw: bytes, path: Path, rng: random.Random) -> bytes:
    """The count or the (first 4 bytes of the) value of a random tag of the first page changed."""
    with tifffile.TiffFile(path) as tif:
        tag = rng.choice(list(tif.pages.first.tags))
        order, count_size = tif.byteorder, 8 if tif.is_bigtiff else 4
    data = bytearray(raw)
    value = rng.choice(TAG_VALUES + [rng.randrange(2**32)])
    if rng.random() < 0.5:
        data[tag.offset + 4 : tag.offset + 4 + count_size] = value.to_bytes(count_size, "little" if order == "<" else "big")
    else:
        data[tag.valueoffset : tag.valueoffset + 4] = value.to_bytes(4, "little" if order == "<" else "big")
    return bytes(data)


def tiff_mutants(raw: bytes, path: Path, rng: random.Random) -> list[tuple[str, bytes]]:
    header_end = min(len(raw), 600)
    mutants = [("header flip", flip_bytes(raw, rng, 0, header_end)) for _ in range(10)]
    mutants += [("flip", flip_bytes(raw, rng, 0, len(raw))) for _ in range(3)]
    mutants += [("truncate", truncate(raw, rng)) for _ in range(3)]
    mutants += [("chunk", cut_or_repeat_chunk(raw, rng)) for _ in range(3)]
    mutants += [("tag", edit_tag(raw, path, rng)) for _ in range(12)]
    return mutants


def instrument_mutants(raw: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    """A few mutants per file (the readers' own tests cover truncation and header damage)."""
    mutants = [("header flip", flip_bytes(raw, rng, 0, min(len(raw), 512))) for _ in range(2)]
    mutants += [("flip", flip_bytes(raw, rng, 0, len(raw))), ("truncate", truncate(raw, rng)),
                ("chunk", cut_or_repeat_chunk(raw, rng))]
    return mutants


def all_mutants(folder: Path) -> list[tuple[str, Path, str]]:
    """``(kind, path, description)`` of every mutant, written into ``folder``."""
    rng = random.Random(SEED)
    (folder / "tiff_sources").mkdir()
    sources = [("ovf", path, ovf_mutants(path.read_bytes(), rng)) for path in OVF_FILES]
    sources += [("tiff", path, tiff_mutants(path.read_bytes(), path, rng)) for path in tiff_sources(folder / "tiff_sources")]
    sources += [("instrument", path, instrument_mutants(path.read_bytes(), rng)) for path in INSTRUMENT_FILES]
    out = []
    for kind, source, mutants in sources:
        for index, (how, raw) in enumerate(mutants):
            path = folder / f"{index:02d}_{source.name}"
            path.write_bytes(raw)
            out.append((kind, path, f"{how} mutant {path.name} of {source.name}"))
    return out


def test_mutants_raise_only_documented_errors_and_never_hang(tmp_path, worker):
    mutants = all_mutants(tmp_path)  # while the worker imports
    assert len(mutants) >= 300
    worker.wait_ready()
    reports = [(what, worker.read(kind, path, what)) for kind, path, what in mutants]
    undocumented = [f"{what}: {report['outcome']}" for what, report in reports
                    if report["outcome"] not in ("read", "documented error")]
    assert undocumented == []
    assert all(isinstance(report["accepted"], bool) for _, report in reports)
    outcomes = [report["outcome"] for _, report in reports]
    assert outcomes.count("documented error") > len(mutants) / 3  # the mutants do damage
    assert outcomes.count("read") > 10  # and some stay readable
