"""How hera starts Python processes of its own (the agent, the shell, the Taichi probe).

``python -m X`` and ``python -c X`` put the working directory first on
``sys.path``, so a ``json.py`` or a ``hera/`` folder that another user
planted in a shared directory would run as whoever runs hera (root too)
before any of hera's own code. ``-P`` (Python 3.11+) leaves it off;
``PYTHONPATH`` and the installed packages are kept, so families installed
or on the user's own path are found as before.
"""

from __future__ import annotations

import sys


def python(*args: str) -> list[str]:
    """The command line of a Python child that never imports from the working directory."""
    return [sys.executable, "-P", *args]
