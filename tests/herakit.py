"""Running hera the way a user does, for tests: a private world and ``python -m hera``.

Not a test module. ``conftest.py`` turns these into fixtures (``hera``,
``home``, ``workdir``, ``isolated``); import the plain helpers from here::

    from herakit import Result, leftovers, one_error_line

* :class:`World` is one user's world: a temporary HOME with the XDG
  directories inside it, a working directory, a short private runtime
  directory, and an environment with none of the caller's HERA_* settings
  (variables hera reads but are no settings, such as HERA_TAICHI_CACHE, stay).
  Calling it runs ``python -m hera ARGS`` there and returns a :class:`Result`.
* :func:`one_error_line` asserts the shape of every failure hera reports:
  a non-zero exit and exactly one line on stderr, ``hera: ...``, no traceback.
* :func:`leftovers` finds temporary files of atomic writes (there must be none).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hera.config import IGNORED_ENV
from hera.instance.atomic import TMP_PREFIX

#: Variables with hera's prefix that a test run keeps: those hera says are not settings.
KEPT_HERA_VARIABLES = IGNORED_ENV


@dataclass(frozen=True)
class Result:
    """What one run of hera did: its exit code and everything it printed."""

    args: tuple[str, ...]
    rc: int
    out: str
    err: str

    def __str__(self) -> str:
        return f"hera {' '.join(self.args)} -> exit {self.rc}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def one_error_line(result: Result, *fragments: str, rc: int | None = None) -> str:
    """Assert a clean failure: non-zero exit (or exactly ``rc``), stderr one ``hera: `` line, no traceback.

    Every fragment must occur in the line. Returns the line, for more checks.
    """
    if rc is None:
        assert result.rc != 0, f"expected a failure\n{result}"
    else:
        assert result.rc == rc, f"expected exit {rc}\n{result}"
    assert "Traceback" not in result.err, str(result)
    lines = result.err.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr\n{result}"
    line = lines[0]
    assert line.startswith("hera: "), f"expected 'hera: ...'\n{result}"
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def leftovers(*directories: Path) -> list[Path]:
    """Temporary files of atomic writes under ``directories`` (after any run there must be none)."""
    found: list[Path] = []
    for directory in directories:
        if Path(directory).is_dir():
            found += sorted(Path(directory).rglob(f"{TMP_PREFIX}*"))
    return found


def user_environment(home: Path, runtime_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) moved into ``home``, without HERA_* settings.

    The caller's PATH, locale, CUDA and Python variables are kept, so hera runs
    as it would for them; where hera keeps things is all inside ``home``.
    """
    env = {
        key: value
        for key, value in (os.environ if base is None else base).items()
        if not (key.startswith("HERA_") and key not in KEPT_HERA_VARIABLES) and not key.startswith("XDG_")
    }
    env |= {
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_RUNTIME_DIR": str(runtime_dir),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONIOENCODING": "utf-8",
    }
    return env


class World:
    """One user's temporary world, and ``python -m hera`` run in it.

    ``home`` (with the XDG config, data, state and cache directories inside),
    ``workdir`` (where commands run), ``runtime_dir`` (XDG_RUNTIME_DIR: kept
    short under the system's temp directory, because socket paths are
    limited to about 100 bytes and pytest's are long) and ``system_dir``
    (system-wide agents, moved by HERA_SYSTEM_DIR so no test touches the
    real one; pass ``env={"HERA_SYSTEM_DIR": None}`` to test that setting).
    Call :meth:`close`, or use it as a context manager, to remove the
    runtime directory.
    """

    def __init__(self, root: Path, *, python: str = sys.executable) -> None:
        self.root = Path(root)
        self.home = self.root / "home"
        self.workdir = self.root / "work"
        self.system_dir = self.root / "system"
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="hera-run-"))
        self.runtime_dir.chmod(0o700)
        self.python = python
        self.env = user_environment(self.home, self.runtime_dir) | {"HERA_SYSTEM_DIR": str(self.system_dir)}
        for name in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME"):
            Path(self.env[name]).mkdir(parents=True, exist_ok=True)
        self.workdir.mkdir(parents=True, exist_ok=True)

    @property
    def herarc(self) -> Path:
        """The user's settings file, ``~/.herarc``."""
        return self.home / ".herarc"

    @property
    def hera_json(self) -> Path:
        """The working directory's settings file, ``./hera.json``."""
        return self.workdir / "hera.json"

    def command(self, *args: str) -> list[str]:
        return [self.python, "-m", "hera", *args]

    def __call__(
        self,
        *args: str,
        env: Mapping[str, str | None] | None = None,
        input: str | None = None,
        check: bool = False,
        cwd: Path | None = None,
        timeout: float = 120,
        **popen: Any,
    ) -> Result:
        """Run ``hera ARGS`` to completion; stdin is ``input`` (never a terminal).

        ``env`` adds to (or, with a value of None, removes from) the world's
        environment. ``check=True`` asserts exit code 0. Other keywords go to
        :func:`subprocess.run` (``preexec_fn`` to set a resource limit, say).
        """
        done = subprocess.run(
            self.command(*args),
            env=self._env(env),
            cwd=cwd or self.workdir,
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            timeout=timeout,
            **popen,
        )
        result = Result(tuple(args), done.returncode, done.stdout, done.stderr)
        if check:
            assert result.rc == 0, str(result)
        return result

    def popen(self, *args: str, env: Mapping[str, str | None] | None = None, **popen: Any) -> subprocess.Popen[str]:
        """Start ``hera ARGS`` without waiting (an agent that stays up, a race); stdin is not a terminal."""
        options: dict[str, Any] = {
            "stdin": subprocess.DEVNULL,
            "stdout": subprocess.PIPE,
            "stderr": subprocess.PIPE,
            "text": True,
        }
        return subprocess.Popen(
            self.command(*args), env=self._env(env), cwd=popen.pop("cwd", self.workdir), **(options | popen)
        )

    def files(self, directory: Path | None = None, pattern: str = "*") -> list[Path]:
        """The files in ``directory`` (default: the working directory), sorted; hidden ones too."""
        where = self.workdir if directory is None else directory
        return sorted(p for p in where.glob(pattern) if p.is_file())

    def _env(self, extra: Mapping[str, str | None] | None) -> dict[str, str]:
        env = dict(self.env)
        for key, value in (extra or {}).items():
            if value is None:
                env.pop(key, None)
            else:
                env[key] = value
        return env

    def close(self) -> None:
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def __enter__(self) -> World:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

