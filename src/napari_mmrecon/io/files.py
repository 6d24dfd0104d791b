"""Safe file output shared by the writers."""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_output(path):
    """Yield a temporary path beside ``path``; move it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is left untouched.
    The caller creates the temporary file (normal permissions via the umask).

    Raises
    ------
    FileNotFoundError
        The folder of ``path`` does not exist.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {path.parent} does not exist")
    temporary = path.with_name(f".tmp-{secrets.token_hex(6)}-{path.name}")
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
