"""Where results come from: the git commit of the running code, recorded in datasets and weights."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit() -> str | None:
    """The git commit of the code running (its source folder's repository), or None."""
    try:
        found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                               text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (found.stdout.strip() or None) if found.returncode == 0 else None
