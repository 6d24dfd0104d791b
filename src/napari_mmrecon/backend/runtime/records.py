"""The one metadata schema of the backend's value objects: plain-dict records, versioned.

Every value object (``Grid``, ``Material``, ``StrayFieldMeasurement``, ``MFMMeasurement``, the
tips, ``Cantilever``, ``FitResult``) has ``to_dict()``, a plain dict of its fields in SI units
(nested records for nested objects), and ``from_dict(values, schema=SCHEMA_VERSION)``. The version
is stamped once at the root of every container that holds records (layer metadata, TIFF metadata,
the OVF ``Desc`` lines, ``fit.json``: ``"schema": SCHEMA_VERSION``) and passed to ``from_dict`` when
read back, so that a record of a newer version is refused with a message instead of misread.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

SCHEMA_VERSION = 1
"""Version of the records written now; ``from_dict`` reads this and older versions."""


def check_schema(schema) -> int:
    """``schema`` as an int if this package reads it; ``ValueError`` for a newer or invalid one."""
    if isinstance(schema, bool) or not isinstance(schema, (int, np.integer)) or schema < 1:
        raise ValueError(f"invalid metadata schema version {schema!r}")
    if schema > SCHEMA_VERSION:
        raise ValueError(f"metadata of schema version {schema}, newer than this napari-mmrecon reads "
                         f"({SCHEMA_VERSION}): update napari-mmrecon")
    return int(schema)


def from_record(kind: str, values, required: tuple[str, ...] = (), schema=SCHEMA_VERSION) -> Mapping:
    """``values`` checked as a ``kind`` record of version ``schema``: ``ValueError`` naming the
    problem if it is not a mapping, its version is newer than this package reads, or it lacks a
    ``required`` field."""
    check_schema(schema)
    if not isinstance(values, Mapping):
        raise ValueError(f"a {kind} record must be a dict, got {type(values).__name__}")
    missing = [name for name in required if name not in values]
    if missing:
        raise ValueError(f"{kind} record lacks {', '.join(missing)}")
    return values
