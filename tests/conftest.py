"""Shared test settings (float64 on the CPU, two threads, as in CI) and fixtures."""

import pytest
import torch

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
