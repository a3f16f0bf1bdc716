"""Helpers for the fault-injection tests (``test_reliability_*.py``): figures, mounts, damage.

Not a test module. Each test adds what it did (trials, faults injected, bad
inputs tried, agents held) to :data:`FIGURES`; at the end of the run they are
printed and written to ``$HERA_RELIABILITY_FIGURES`` (default
``reliability-figures.json`` in pytest's base temporary directory), from
which ``docs/reliability.md`` takes its numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

#: What the reliability tests did in this run, by test and figure.
FIGURES: dict[str, Counter[str]] = {}


def note(test: str, **figures: int) -> None:
    """Add figures (trials=3, faults=3, ...) for ``test``."""
    FIGURES.setdefault(test, Counter()).update(figures)


def dump(path: Path) -> dict[str, dict[str, int]]:
    data = {test: dict(counts) for test, counts in sorted(FIGURES.items())}
    path.write_text(json.dumps(data, indent=2) + "\n")
    return data


@contextlib.contextmanager
def tmpfs(directory: Path, size: str = "2m") -> Iterator[Path]:
    """A small tmpfs at ``directory`` (a full disk on demand); raises OSError where mounting is not allowed."""
    directory.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(directory)], capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], capture_output=True)


def remount(directory: Path, mode: str) -> None:
    """``mount -o remount,ro|rw`` the tmpfs at ``directory``."""
    subprocess.run(["mount", "-o", f"remount,{mode}", str(directory)], check=True, capture_output=True)


def fill(directory: Path) -> Path:
    """Fill the filesystem of ``directory`` to the last byte; the filler file, to remove afterwards."""
    filler = directory / "filler"
    chunk = b"\0" * (64 * 1024)
    with open(filler, "wb", buffering=0) as out:
        with contextlib.suppress(OSError):
            while True:
                out.write(chunk)
        with contextlib.suppress(OSError):
            while True:
                out.write(b"\0")
    return filler


def flip_bit(path: Path, offset: int) -> None:
    """Flip the low bit of the byte at ``offset`` (counted from the end when negative)."""
    data = bytearray(path.read_bytes())
    data[offset] ^= 1
    path.write_bytes(bytes(data))


def array_offset(path: Path) -> int:
    """An offset inside the base64 data of the first array of an instance file (past the header)."""
    data = path.read_bytes()
    start = data.index(b'"arrays"')
    at = data.index(b'"data"', start)
    return data.index(b'"', at + len(b'"data"') + 1) + 8


def is_root() -> bool:
    return os.geteuid() == 0


def _dump_at_exit() -> None:
    """Print the figures and write them where docs/reliability.md takes them from."""
    if not FIGURES:
        return
    import sys
    import tempfile

    path = Path(os.environ.get("HERA_RELIABILITY_FIGURES", Path(tempfile.gettempdir()) / "hera-reliability-figures.json"))
    data = dump(path)
    sys.stderr.write(f"reliability figures -> {path}: {json.dumps(data)}\n")


import atexit  # noqa: E402

atexit.register(_dump_at_exit)
