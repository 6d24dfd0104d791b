"""A small per-thread cache of objects built from argument values (the one-call functions' models).

The one-call functions (``effective_field``, ``energy``, ``relax``, ``llg``) take a grid and a
material on every call; what they build from them (the exchange and DMI couplings, the fused
kernel, the FFT plans' sizes and work buffers) is kept here so that a second call with the same
values costs what a call of a model built once does.

A cached object is returned only for arguments equal in value, never by identity alone:

- numbers, strings, dtypes, devices, tuples of them and frozen dataclasses (a ``Grid``) are
  compared as values;
- an array, list or tensor of at most ``SMALL`` entries is compared by its entries;
- a larger one by its shape, dtype and device and, entry by entry, with the copy the cache keeps
  of it (one pass over the data, far cheaper than the build it saves). An array changed in place
  since the object was built (through numpy, a tensor view or ``.data``, which a tensor's version
  counter would not all see) therefore misses, and the object is built again;
- a tensor that requires grad, or any other kind of value, is not cached: the object is built
  from the arguments as given, every time (an object built from a tensor that requires grad
  holds a graph that one backward pass frees).

The object is built from copies of the arrays and tensors among the arguments, so it never shares
memory with the caller's (which the caller may change later). Each thread has its own cache: the
objects keep work buffers and must not be used by two threads at once.
"""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import torch

SMALL = 16
"""Arrays and tensors of at most this many entries are part of the key itself."""

_SCALARS = (bool, int, float, complex, str, np.generic, torch.dtype, torch.device)


class _Uncachable(Exception):
    """A value the cache cannot compare safely."""


def _frozen_dataclass(value) -> bool:
    return dataclasses.is_dataclass(value) and not isinstance(value, type) and value.__dataclass_params__.frozen


def _key(value, arrays: list):
    """Hashable key of ``value``; the larger arrays and tensors in it are appended to ``arrays``
    (they are compared by content on lookup). Raises ``_Uncachable``."""
    if value is None or isinstance(value, _SCALARS) or _frozen_dataclass(value):
        return value
    if isinstance(value, tuple):
        return ("tuple",) + tuple(_key(v, arrays) for v in value)
    if isinstance(value, torch.Tensor):
        if value.requires_grad:
            raise _Uncachable
        head = ("tensor", value.dtype, value.device, tuple(value.shape))
    elif isinstance(value, (np.ndarray, list)):
        value = np.asarray(value)
        if value.dtype.kind not in "biufc":
            raise _Uncachable
        head = ("array", value.dtype.str, value.shape)
    else:
        raise _Uncachable
    count = value.size if isinstance(value, np.ndarray) else value.numel()
    if count <= SMALL:
        return head + (tuple(value.reshape(-1).tolist()),)
    arrays.append(value)
    return head


def _own(value):
    """``value`` with every array, list and tensor in it copied (tensors detached)."""
    if isinstance(value, tuple):
        return tuple(_own(v) for v in value)
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (np.ndarray, list)):
        return np.array(value)
    return value


def _equal(current, kept) -> bool:
    if isinstance(current, torch.Tensor):
        return torch.equal(current, kept)
    return bool(np.array_equal(current, kept))


class ValueCache:
    """The ``size`` most recently used objects of each thread, keyed by argument values.

    Parameters
    ----------
    size : int
        Objects kept per thread (least recently used dropped first).
    """

    def __init__(self, size: int):
        self.size = size
        self._local = threading.local()

    def _entries(self) -> list:
        """This thread's ``[(key, kept arrays, object)]``, most recently used last."""
        if not hasattr(self._local, "entries"):
            self._local.entries = []
        return self._local.entries

    def get(self, values: tuple, build):
        """``build(*values)`` for these values, or the object it returned for equal values before.

        A new object is built from copies of the arrays and tensors in ``values`` (see the module
        docstring); uncachable values are passed as given.
        """
        arrays = []
        try:
            key = _key(values, arrays)
            hash(key)
        except (_Uncachable, TypeError, ValueError, RuntimeError):
            return build(*values)
        entries = self._entries()
        for index, (entry_key, kept, obj) in enumerate(entries):
            if entry_key == key and all(_equal(a, b) for a, b in zip(arrays, kept)):
                entries.append(entries.pop(index))
                return obj
        owned = _own(values)
        kept = []
        _key(owned, kept)
        obj = build(*owned)
        entries.append((key, kept, obj))
        del entries[: -self.size]
        return obj

    def clear(self) -> None:
        """Drop this thread's objects (and the memory they hold)."""
        self._entries().clear()
