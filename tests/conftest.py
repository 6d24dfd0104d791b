"""Shared test settings (float64 on the CPU, two threads, as in CI) and fixtures."""

import pytest
import torch

if torch.get_num_threads() != 2:
    # only where needed: set here, the count becomes MKL's own in this thread and in threads started
    # later, and backend.runtime.threads can then no longer put small problems on one thread in
    # worker threads (a 64 x 64 reconstruction in a job thread: 70 s instead of 6 s on loaded cores)
    torch.set_num_threads(2)


class Notifications(list):
    """The napari notifications dispatched during a test."""

    def errors(self) -> list:
        """Messages of the error notifications, in order."""
        from napari.utils.notifications import NotificationSeverity

        return [n.message for n in self if n.severity == NotificationSeverity.ERROR]


@pytest.fixture
def notes():
    """Every napari notification dispatched during the test (napari imported only when used)."""
    from napari.utils.notifications import notification_manager

    seen = Notifications()
    notification_manager.notification_ready.connect(seen.append)
    yield seen
    notification_manager.notification_ready.disconnect(seen.append)
