"""Asylum Research / Igor Pro binary waves (``.ibw``), read with ``igor2``.

An Asylum image is one wave of ``ScanPoints x ScanLines x channels`` (Igor's dimension 0 is the
fast scan, x); each layer is a channel named by the wave's dimension labels (``HeightRetrace``,
``NapPhaseRetrace``...). The labels are read from the file here: igor2 0.5.15 joins a label's
bytes past its terminating NUL (``"PhaseRetrace\\0race"`` becomes ``"PhaseRetracerace"``).

A channel whose name starts with ``Nap`` was taken on the lift (nap) pass: ``metadata["pass"]`` is
``"lift"`` there, ``"main"`` otherwise. Units per channel by the Asylum channel name: heights,
Z sensor, deflection and amplitude in m, phase in degrees, frequency in Hz, others from the note's
``<Name>Unit`` (``UserIn0Unit: V``) or unknown. The pixel size is the wave's own x/y scaling
(Igor's ``sfA``; Asylum writes ``ScanSize / (ScanPoints - 1)``: the first and last points sit on
the frame's edges).

The wave note (``Key: value`` lines) gives the cantilever: ``k`` from ``SpringConstant``; ``f0`` from
``ThermalFrequency`` (the free resonance of the thermal tune), else ``ResFreq1``, else
``DriveFrequency``; ``Q`` from ``ThermalQ``, else ``TuneQResult``; and the lift: ``NapHeight`` when
``NapMode`` is on, or ``LiftHeight``.

Row order: Igor's dimension 1 is the slow scan with line 0 at the frame's bottom (y = 0) as Igor
displays it, so the image is the layer transposed to ``(ny, nx)`` with no flip: increasing row =
increasing y. ``ScanDown`` is kept in the header; that Asylum stores the lines by position also
for a downward slow scan is assumed (the test file scans up).
"""

from __future__ import annotations

import logging
import re
import struct

import numpy as np

from napari_mmrecon.io.instrument import (
    InstrumentChannel,
    InstrumentError,
    InstrumentFile,
    checked_channel_data,
)
from napari_mmrecon.io.instrument._units import (
    missing_items,
    quantity_of,
    scan_direction,
    si_unit,
)

VERSIONS = (1, 2, 3, 5)
BIN_HEADER5_BYTES = 64
LABEL_BYTES = 32

_UNIT_BY_NAME = [(re.compile(r"height|zsensor|deflection|amplitude", re.IGNORECASE), "m"),
                 (re.compile(r"phase", re.IGNORECASE), "deg"), (re.compile(r"freq", re.IGNORECASE), "Hz")]
"""Asylum channel name -> unit of its values (``Inphase``/``Quadrature`` are volts and so unknown here)."""


def accepts(path) -> bool:
    """Whether ``path`` starts with an Igor binary wave version word (1, 2, 3 or 5, either byte order)."""
    with open(path, "rb") as handle:
        head = handle.read(2)
    return len(head) == 2 and (int.from_bytes(head, "little") in VERSIONS or int.from_bytes(head, "big") in VERSIONS)


def _check_v5_sizes(path, raw: bytes):
    """``InstrumentError`` when a version-5 file is shorter than its header's sections add up to
    (igor2 reads a short file without complaint when the cut falls in the labels or indices)."""
    if len(raw) < BIN_HEADER5_BYTES:
        raise InstrumentError(f"{path}: {len(raw)} bytes, shorter than an Igor header (truncated)")
    order = "<" if raw[0] == 5 else ">"
    # wfmSize, formulaSize, noteSize, dataEUnitsSize, dimEUnitsSize[4], dimLabelsSize[4], sIndicesSize
    sizes = struct.unpack_from(order + "13i", raw, 4)
    if min(sizes) < 0 or BIN_HEADER5_BYTES + sum(sizes) > len(raw):
        raise InstrumentError(f"{path}: the Igor header declares {BIN_HEADER5_BYTES + sum(sizes)} bytes, the file has "
                              f"{len(raw)} (truncated or damaged)")


def _load_wave(path) -> dict:
    """igor2's reading of ``path``, with its logger silenced (it logs a damaged wave's whole data)."""
    from igor2 import binarywave

    logger = logging.getLogger(binarywave.__name__)
    disabled, logger.disabled = logger.disabled, True
    try:
        return binarywave.load(str(path))
    finally:
        logger.disabled = disabled


def parse_note(note: bytes) -> dict:
    """``{key: value}`` of an Asylum wave note (``Key: value`` lines separated by CR)."""
    text = note.decode("latin-1")
    return {key.strip(): value.strip() for key, sep, value in
            (line.partition(":") for line in re.split(r"\r\n|\r|\n", text)) if sep and key.strip()}


def _number(note: dict, key: str) -> float | None:
    try:
        value = float(note[key])
    except (KeyError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _layer_labels(path, raw: bytes, bin_header: dict, version: int, layers: int) -> list[str]:
    """The names of the ``layers`` layers (dimension 2 labels), cut at each label's NUL."""
    if version != 5 or int(bin_header["dimLabelsSize"][2]) == 0:
        return [f"Channel {index}" for index in range(layers)]
    offset = (BIN_HEADER5_BYTES + int(bin_header["wfmSize"]) + int(bin_header["formulaSize"])
              + int(bin_header["noteSize"]) + int(bin_header["dataEUnitsSize"]) + int(sum(bin_header["dimEUnitsSize"]))
              + int(sum(bin_header["dimLabelsSize"][:2])))
    block = raw[offset: offset + int(bin_header["dimLabelsSize"][2])]
    labels = [block[i: i + LABEL_BYTES].split(b"\0", 1)[0].decode("latin-1").strip()
              for i in range(LABEL_BYTES, len(block), LABEL_BYTES)]  # the first label names the dimension
    if len(labels) < layers:
        raise InstrumentError(f"{path}: {len(labels)} channel labels for {layers} channels (damaged)")
    return [label or f"Channel {index}" for index, label in enumerate(labels[:layers])]


def _unit(name: str, note: dict) -> tuple[str, float]:
    stem = re.sub(r"(Re)?[Tt]race$", "", name)
    for pattern, unit in _UNIT_BY_NAME:
        if pattern.search(stem):
            return unit, 1.0
    return si_unit(note.get(f"{re.sub(r'^Nap', '', stem)}Unit", ""))


def _pixel_size(header: dict) -> tuple[float, float] | None:
    scale, units = header["sfA"], header["dimUnits"]
    unit_of = [b"".join(np.atleast_1d(units[d])).decode("latin-1") for d in (0, 1)]
    dx, dy = float(scale[0]), float(scale[1])
    if unit_of == ["m", "m"] and np.isfinite([dx, dy]).all() and dx > 0 and dy > 0:
        return dy, dx
    return None


def _cantilever(note: dict) -> tuple[dict, dict]:
    cantilever, sources = {}, {}
    for key, candidates in (("k", ("SpringConstant",)), ("f0", ("ThermalFrequency", "ResFreq1", "DriveFrequency")),
                            ("Q", ("ThermalQ", "TuneQResult"))):
        for source in candidates:
            value = _number(note, source)
            if value is not None:
                cantilever[key], sources[key] = value, source
                break
    return cantilever, sources


def _lift_height(note: dict) -> float | None:
    nap_on = (_number(note, "NapMode") or 0) > 0
    return (_number(note, "NapHeight") if nap_on else None) or _number(note, "LiftHeight")


def read(path) -> InstrumentFile:
    """Every image channel of the Igor binary wave ``path`` (an Asylum image), rows in increasing y."""
    if not accepts(path):
        raise InstrumentError(f"{path}: not an Igor binary wave (no version word 1, 2, 3 or 5)")
    with open(path, "rb") as handle:
        raw = handle.read()
    if raw[0] == 5 or raw[1] == 5:
        _check_v5_sizes(path, raw)
    loaded = _load_wave(path)
    wave, version = loaded["wave"], int(loaded["version"])
    values = np.asarray(wave["wData"])
    if values.ndim == 2:
        values = values[:, :, None]
    if values.ndim != 3 or values.dtype.kind not in "fiu" or min(values.shape[:2]) < 2:
        raise InstrumentError(f"{path}: the wave is not an image or a stack of images (shape {values.shape}, "
                              f"type {values.dtype})")
    header = wave["wave_header"]
    note = parse_note(wave.get("note", b""))
    names = _layer_labels(path, raw, wave["bin_header"], version, values.shape[2])
    pixel_size = _pixel_size(header) if version == 5 else None
    channels = []
    for index, name in enumerate(names):
        unit, factor = _unit(name, note)
        data = checked_channel_data(path, name, values[:, :, index].T) * factor
        channels.append(InstrumentChannel(name=name, data=np.ascontiguousarray(data), unit=unit, pixel_size=pixel_size,
                                          direction=scan_direction(name), quantity=quantity_of(name, unit),
                                          metadata={"layer": index,
                                                    "pass": "lift" if name.startswith("Nap") else "main"}))
    cantilever, sources = _cantilever(note)
    lift = _lift_height(note)
    record = {**note, "igor_version": version, "wave_name": header.get("bname", b"").decode("latin-1"),
              "cantilever_sources": sources}
    return InstrumentFile(path=str(path), format="ibw", channels=channels, lift_height=lift, cantilever=cantilever,
                          missing=missing_items(pixel_size, lift, cantilever), header=record)
