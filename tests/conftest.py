"""Fixtures for every test of hera: a user's private world, and hera run in it as a user runs it.

* ``hera``: a :class:`herakit.World`. ``hera("--family", "abraxas", "build")``
  runs ``python -m hera ...`` in the working directory and returns a
  :class:`herakit.Result` (``.rc``, ``.out``, ``.err``). Keywords: ``env``
  (added to the world's environment; a value of None removes the variable),
  ``input`` (stdin text; stdin is never a terminal), ``check=True`` (assert
  exit 0), ``cwd``, ``timeout``, and any other :func:`subprocess.run`
  keyword. ``hera.popen(...)`` starts one without waiting. ``hera.home``,
  ``hera.workdir``, ``hera.runtime_dir``, ``hera.system_dir``, ``hera.env``,
  ``hera.herarc`` and ``hera.hera_json`` say where things are.
* ``home``, ``workdir``: the same world's HOME and working directory.
  HOME holds the XDG config, data, state and cache directories;
  XDG_RUNTIME_DIR is a short private directory under the system's temp
  directory. No HERA_* variable of the caller's reaches hera; the world sets
  one, HERA_SYSTEM_DIR, so that no test touches the real system-wide agents.
* ``isolated``: moves *this* process into the same world (environment and
  current directory), for tests that call hera's functions in-process.

Assertion helpers live in :mod:`herakit`: ``one_error_line(result, *fragments,
rc=None)`` for the one-line failure every bad input must give, and
``leftovers(*dirs)`` for temporary files a failed write must not leave.
A module may define its own ``hera`` fixture; these stay available beside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from herakit import World


@pytest.fixture
def hera(tmp_path: Path) -> Iterator[World]:
    """A fresh user world for this test; call it to run ``hera ARGS`` there."""
    with World(tmp_path) as world:
        yield world


@pytest.fixture
def home(hera: World) -> Path:
    """The test user's HOME (``~/.herarc`` lives here)."""
    return hera.home


@pytest.fixture
def workdir(hera: World) -> Path:
    """The working directory every ``hera`` command of the test runs in (``./hera.json``, built files)."""
    return hera.workdir


@pytest.fixture
def isolated(hera: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """This process in the test user's world: their environment, their working directory."""
    for key in list(os.environ):
        if key not in hera.env:
            monkeypatch.delenv(key)
    for key, value in hera.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(hera.workdir)
    return hera


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may write to, sticky, as /tmp is: where other users' attacks happen."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="hera-shared-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    """A directory for a module's worlds that other users can reach (not under a 0700 pytest temp)."""
    import shutil

    from cachekit import world_tmpdir

    path = world_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)
