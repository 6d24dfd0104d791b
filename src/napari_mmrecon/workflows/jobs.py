"""Long-running work as generators that report progress: the protocol shared by the napari
widgets (run in a thread worker, ``widgets.runner``), the command line (a progress bar) and the
sample data (run to completion).

A *job* is a generator function ``work(cancel)`` taking a ``threading.Event``. While it runs it
yields

- ``Progress(value, maximum, text)``: how far it is (``maximum == 0`` means "unknown"), and
- ``Partial(payload)``: an intermediate result that is complete in itself (e.g. a relaxed state
  before the fields computed from it), which a GUI may show at once,

and it finally ``return``\\ s its result. It should pass ``cancel`` to every backend call that
accepts one (``relax(..., cancel=cancel)``) and yield between steps, so that whoever drives it
can stop it there.

Blocking backend calls that report through a callback (``relax(progress=...)``) are turned into
``Progress`` yields by ``relay``, which runs the call in a helper thread.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Generator

RELAY_INTERVAL = 0.1
"""Least time (s) between two ``Progress`` items that ``relay`` passes on."""


@dataclass(frozen=True)
class Progress:
    """How far a job is: ``value`` out of ``maximum`` (0 = unknown), with a line of text."""

    value: int
    maximum: int
    text: str


@dataclass(frozen=True)
class Partial:
    """An intermediate result of a job, complete in itself."""

    payload: Any


Job = Generator[Progress | Partial, None, Any]
"""What a job function returns when called with its cancel event."""


def run(job: Job, on_progress: Callable[[Progress], None] | None = None,
        on_partial: Callable[[Any], None] | None = None):
    """Drive ``job`` to its end in this thread and return its result.

    ``on_progress(Progress)`` and ``on_partial(payload)`` are called for what it yields.
    """
    while True:
        try:
            item = next(job)
        except StopIteration as stop:
            return stop.value
        if isinstance(item, Progress) and on_progress is not None:
            on_progress(item)
        elif isinstance(item, Partial) and on_partial is not None:
            on_partial(item.payload)


_DONE = object()


def relay(call: Callable[[Callable[..., None]], Any], describe: Callable[..., Progress],
          cancel: threading.Event) -> Job:
    """Run a blocking ``call(report)`` in a helper thread and yield its reports as ``Progress``.

    Parameters
    ----------
    call : callable ``call(report) -> result``
        Calls the backend with ``report`` as its progress callback (and ``cancel`` as its cancel
        event, which the caller binds).
    describe : callable ``describe(*args) -> Progress``
        Turns the arguments of one ``report(*args)`` into a ``Progress``.
    cancel : threading.Event
        Set here if the generator is closed before ``call`` returns (the driver stopped it), so
        that the helper thread ends too.

    Yields at most one ``Progress`` per ``RELAY_INTERVAL`` (the latest report) and returns the
    result of ``call``; an exception raised by ``call`` is raised here.
    """
    reports: queue.SimpleQueue = queue.SimpleQueue()
    outcome: dict = {}

    def target():
        try:
            outcome["result"] = call(lambda *args: reports.put(args))
        except BaseException as exc:  # handed over to the generator below
            outcome["error"] = exc
        finally:
            reports.put(_DONE)

    helper = threading.Thread(target=target, name="mmrecon-relay", daemon=True)
    helper.start()
    latest, last_yield, done = None, 0.0, False
    try:
        while not done:
            item = reports.get()
            while item is not _DONE and not reports.empty():
                latest, item = item, reports.get()
            if item is _DONE:
                done = True
            else:
                latest = item
            if latest is not None and (done or time.monotonic() - last_yield >= RELAY_INTERVAL):
                yield describe(*latest)
                latest, last_yield = None, time.monotonic()
    finally:
        if not done:  # closed before the call reported its end (not merely before its thread exited)
            cancel.set()
        helper.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]


def relay_snapshots(call, cancel, progress_of):
    """Run ``call(report)`` through ``relay`` and yield, for each snapshot it reports,
    ``progress_of(snapshot)`` (a ``Progress``) and ``Partial(snapshot)``; returns ``call``'s result
    (use with ``yield from``)."""
    snapshots = relay(call, lambda snapshot: snapshot, cancel)
    try:
        while True:
            try:
                snapshot = next(snapshots)
            except StopIteration as stop:
                return stop.value
            yield progress_of(snapshot)
            yield Partial(snapshot)
    finally:
        snapshots.close()
