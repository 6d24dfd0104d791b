"""Run / Cancel buttons, a progress bar and a status line over one background job at a time.

``JobPanel`` is the piece every dock widget of this plugin uses to run its work off the GUI
thread::

    from napari_mmrecon.widgets.runner import JobPanel, Task

    class MyWidget(Container):
        def __init__(self, napari_viewer):
            super().__init__()
            self.panel = JobPanel("My widget", prepare=self._prepare, run_text="Run")
            self.append(self.panel)

        def _prepare(self) -> Task:          # GUI thread, on each Run click
            settings = read_and_check_fields()   # raise ValueError("...") for bad input
            return Task(work=lambda cancel: my_job(settings, cancel),
                        on_result=self._show, on_partial=self._show_partial)

Contract
--------
``prepare()``
    Called on the GUI thread when Run is clicked. Reads the widget, validates it and returns a
    ``Task``. A ``ValueError`` it raises (bad input) becomes an error notification
    ``"<title>: <message>"`` and nothing runs; so does any other exception.
``Task.work(cancel)``
    A job in the protocol of ``napari_mmrecon.workflows.jobs``: a generator function taking a
    ``threading.Event``, run in a napari thread worker (``napari.qt.threading.thread_worker``).
    It yields ``jobs.Progress(value, maximum, text)`` (shown in the bar and the status line;
    ``maximum == 0`` shows a busy bar) and ``jobs.Partial(payload)``, and returns its result.
    It must not touch napari or Qt.
``Task.on_partial(payload)``, ``Task.on_result(result)``
    Called on the GUI thread with each ``Partial`` payload as it arrives and with the returned
    result. Build every layer first and add them together (``widgets.layer_io.add_layers``) so
    that a failure adds none.
Cancel
    Sets the ``cancel`` event (pass it to the backend: ``relax(..., cancel=cancel)``) and quits
    the worker, which stops the generator at its next yield. After Cancel, ``on_result`` is not
    called; partial results already delivered stay. A job that stops by itself soon after
    ``cancel`` is set and returns what it has (a fit returning its best state so far) says so with
    ``Task(keep_on_cancel=True)``: Cancel then only sets the event, later items are not shown, and
    the returned result goes to ``on_result`` (status "cancelled: kept the result so far").
Errors
    Any exception from ``work``, ``on_partial`` or ``on_result`` becomes a napari error
    notification naming the problem (the message of a ``ValueError`` or ``OSError``, else the
    exception type and message), never a traceback dialog; the traceback goes to the log.
    A Run click while a job runs is refused with a warning notification.

Attributes for callers and tests: ``run_button``, ``cancel_button``, ``progress``, ``status``
(magicgui widgets), ``is_running``, ``worker`` (the running ``GeneratorWorker`` or None),
``run()`` (what the Run button does, returns whether a job started), ``start(prepare)`` (the
same for another button's ``prepare``), ``cancel()`` and
``report_error(exc)`` (the notification of the Errors paragraph, for checks outside a run).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from magicgui.widgets import Container, Label, ProgressBar, PushButton
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_warning
from qtpy.QtWidgets import QSizePolicy

from ..workflows.jobs import Job, Partial, Progress

logger = logging.getLogger(__name__)
PANEL_MARGINS = (4, 4, 4, 4)


@dataclass
class Task:
    """One run of a ``JobPanel``: the job and what to do with its results (see the module doc)."""

    work: Callable[[threading.Event], Job]
    on_result: Callable[[Any], None]
    on_partial: Callable[[Any], None] | None = None
    keep_on_cancel: bool = False


@dataclass
class _Outcome:
    """What the guarded job returned: its result, or the exception that stopped it."""

    result: Any = None
    error: BaseException | None = None


def _guarded(work: Callable[[threading.Event], Job], cancel: threading.Event, keep_on_cancel: bool = False):
    """``work(cancel)`` with its exceptions turned into an ``_Outcome`` and stopped (closed, in
    the worker thread) at the first item it yields after ``cancel`` is set, unless
    ``keep_on_cancel`` (then it runs to its own end and its result is kept)."""
    job = work(cancel)
    try:
        while True:
            item = next(job)
            if cancel.is_set() and not keep_on_cancel:
                return _Outcome()
            yield item
    except StopIteration as stop:
        return _Outcome(result=stop.value)
    except Exception as exc:
        return _Outcome(error=exc)
    finally:
        job.close()


def describe_error(exc: BaseException) -> str:
    """The message a user sees: a ValueError's / OSError's text, else type and text."""
    if isinstance(exc, (ValueError, OSError)):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


class JobPanel(Container):
    """Run and Cancel buttons and a progress bar in one row, a status line below (see the module
    docstring). The status line never widens its dock; its tooltip holds the whole text.

    Parameters
    ----------
    title : str
        Names the widget in notifications.
    prepare : callable () -> Task
        Reads and checks the widget's inputs on the GUI thread; raises ValueError for bad input.
    run_text : str
        Label of the Run button.
    """

    def __init__(self, title: str, prepare: Callable[[], Task], run_text: str = "Run"):
        self.title = title
        self._prepare = prepare
        self.run_button = PushButton(text=run_text)
        self.cancel_button = PushButton(text="Cancel", enabled=False)
        self.progress = ProgressBar(value=0, min=0, max=1000, label="progress")
        self.status = Label(value="ready")
        self.status.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.status.changed.connect(self._show_status_tip)
        row = Container(widgets=[self.run_button, self.cancel_button, self.progress], layout="horizontal",
                        labels=False)
        row.margins = (0, 0, 0, 0)
        super().__init__(widgets=[row, self.status], labels=False)
        self.margins = PANEL_MARGINS
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.worker = None
        self._task: Task | None = None
        self._cancel = threading.Event()
        self._outcome: _Outcome | None = None
        self._started = 0.0

    @property
    def is_running(self) -> bool:
        """True from a successful Run until the worker has finished."""
        return self.worker is not None

    def run(self) -> bool:
        """Start a job as the Run button does; False (with a notification) if none started."""
        return self.start(self._prepare)

    def start(self, prepare: Callable[[], Task]) -> bool:
        """Start the job that ``prepare`` (instead of the panel's own) returns, in this panel, as
        ``run`` does (a second button of a widget: its progress, Cancel and errors are the panel's)."""
        if self.is_running:
            show_warning(f"{self.title} is already running: wait for it to finish or press Cancel")
            return False
        try:
            task = prepare()
        except Exception as exc:  # ValueError: bad input; anything else: a bug, still no dialog
            self.report_error(exc)
            return False
        self._task, self._cancel, self._outcome = task, threading.Event(), None
        worker = thread_worker(_guarded, start_thread=False, ignore_errors=True)(task.work, self._cancel,
                                                                                 task.keep_on_cancel)
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self.worker = worker
        self._started = time.perf_counter()
        self.cancel_button.enabled = True
        self._show_progress(Progress(0, 0, "starting"))
        worker.start()
        return True

    def cancel(self) -> None:
        """Ask the running job to stop (sets its cancel event and quits the worker)."""
        if self.worker is None:
            return
        self._cancel.set()
        if not self._task.keep_on_cancel:
            self.worker.quit()
        self.status.value = "cancelling..."

    # ------------------------------------------------------------------ worker signals (GUI thread)

    def _on_yielded(self, item) -> None:
        if self._cancel.is_set():
            return
        if isinstance(item, Progress):
            self._show_progress(item)
        elif isinstance(item, Partial) and self._task.on_partial is not None:
            self._deliver(self._task.on_partial, item.payload)

    def _on_returned(self, outcome: _Outcome) -> None:
        self._outcome = outcome

    def _on_errored(self, exc: BaseException) -> None:
        self._outcome = _Outcome(error=exc)

    def _on_finished(self) -> None:
        task, outcome = self._task, self._outcome
        self.worker, self._task = None, None
        self.cancel_button.enabled = False
        self.progress.max, self.progress.value = 1000, 0
        if self._cancel.is_set() and not (task.keep_on_cancel and outcome is not None and outcome.error is None):
            self.status.value = "cancelled"
        elif outcome is None:
            self.status.value = "stopped"
        elif outcome.error is not None:
            self.report_error(outcome.error)
        elif self._deliver(task.on_result, outcome.result):
            self.progress.value = 1000
            elapsed = time.perf_counter() - self._started
            self.status.value = (f"cancelled: kept the result so far ({elapsed:.1f} s)" if self._cancel.is_set()
                                 else f"done in {elapsed:.1f} s")

    # ------------------------------------------------------------------ helpers

    def _deliver(self, callback: Callable[[Any], None], value) -> bool:
        """``callback(value)``; an exception becomes a notification. True on success."""
        try:
            callback(value)
        except Exception as exc:
            self.report_error(exc)
            return False
        return True

    def report_error(self, exc: BaseException) -> None:
        """Show ``exc`` as an error notification and in the status line."""
        message = describe_error(exc)
        if isinstance(exc, (ValueError, OSError)):
            logger.info("%s refused: %s", self.title, message)
        else:
            logger.error("%s failed: %s", self.title, message, exc_info=exc)
        self.status.value = f"failed: {message}"
        show_error(f"{self.title}: {message}")

    def _show_status_tip(self, text: str) -> None:
        """The whole status line as a tooltip: a narrow dock cuts it."""
        self.status.tooltip = text

    def _show_progress(self, progress: Progress) -> None:
        self.progress.max = max(int(progress.maximum), 0)
        self.progress.value = min(max(int(progress.value), 0), self.progress.max)
        self.status.value = progress.text
