"""Helpers for the cache tests: instance files made cheaply, stand-ins for running agents, other users.

Not a test module. The cache tests import from it; the general fixtures
(temporary HOME, the ``hera`` runner) come from ``conftest.py``.

* :func:`retag` copies a built instance file under another UUID or callsign.
  The header is plain JSON at the front and the checksums cover only the
  arrays, so this is how a test gets many agents (or two whose UUIDs share a
  prefix) for the price of one ``hera build``.
* :class:`FakeAgent` is a real process titled the way an up agent is
  (``hera: <callsign> <uuid8> <family>/<layout>``): it starts in
  milliseconds, and :func:`write_pid_file` gives it exactly the pid-file a
  liveness test needs, right or wrong.
* :func:`other_user_python` finds an interpreter that another user (such as
  ``nobody``) can run hera with, even when this one lives under ``/root``,
  and :class:`OtherUser` is a :class:`herakit.World` whose commands run as
  that user.
* :func:`cache_of`, :func:`cached` and :func:`runtime_of` say where a world's
  hera keeps its agents and pid-files (the defaults under its HOME and
  XDG_RUNTIME_DIR); :func:`with_private_system_dir` points its system
  directory into the world, away from the real one.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from herakit import Result, World

HEADER_AT = b'"header": '


def _group_of(user: str) -> int:
    import pwd

    return pwd.getpwnam(user).pw_gid


# -- instance files ---------------------------------------------------------------------------


def read_head(path: Path) -> dict:
    data = Path(path).read_bytes()
    start = data.index(HEADER_AT) + len(HEADER_AT)
    header, _ = json.JSONDecoder().raw_decode(data.decode("utf-8"), start)
    return header


def retag(source: Path, target: Path, *, uuid: str | None = None, callsign: str | None = None) -> Path:
    """Copy an instance file, changing its header's uuid and/or callsign (arrays untouched)."""
    data = Path(source).read_bytes()
    start = data.index(HEADER_AT) + len(HEADER_AT)
    text = data.decode("utf-8")
    header, end = json.JSONDecoder().raw_decode(text, start)
    if uuid is not None:
        header["uuid"] = uuid
    if callsign is not None:
        header["callsign"] = callsign
    head = json.dumps(header, indent=2).encode()
    Path(target).write_bytes(data[:start] + head + text[end:].encode("utf-8"))
    return Path(target)


def mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


# -- stand-ins for running agents -------------------------------------------------------------

_TITLED = (
    "import setproctitle, sys, time\n"
    "setproctitle.setproctitle(sys.argv[1])\n"
    "print('ready', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


class FakeAgent:
    """A live process titled as agent ``callsign``/``uuid`` would be; ``pid_file`` writes its pid-file."""

    def __init__(self, callsign: str, uuid: str, family: str = "abraxas", layout: str = "example", *, title: str | None = None) -> None:
        self.title = title or f"hera: {callsign} {uuid[:8]} {family}/{layout}"
        self.process = subprocess.Popen(
            [sys.executable, "-c", _TITLED, self.title, "120"], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()


def write_pid_file(runtime_dir: Path, uuid: str, pid: int, *, age: float = 0.0) -> Path:
    """A pid-file as an up agent leaves it; ``age`` backdates its mtime by that many seconds."""
    runtime_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = runtime_dir / f"{uuid}.pid"
    path.write_text(f"{pid}\n")
    if age:
        stamp = path.stat().st_mtime - age
        os.utime(path, (stamp, stamp))
    return path


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- other users ------------------------------------------------------------------------------


def _runs_hera_as(user: str, python: str) -> bool:
    try:
        done = subprocess.run(
            [python, "-c", "import hera.cli, filelock, psutil, pydantic, platformdirs"],
            user=user,
            group=_group_of(user),
            extra_groups=[],
            cwd="/",
            capture_output=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def other_user_python(user: str, scratch: Path) -> str:
    """An interpreter ``user`` can run hera with, or skip the test.

    This interpreter when ``user`` may run it; otherwise (a pyenv under
    /root, say) the system's Python of the same version in a throwaway venv
    whose ``.pth`` adds this environment's site-packages, so hera and its
    dependencies are the very same files.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to run commands as another user")
    if _runs_hera_as(user, sys.executable):
        return sys.executable
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    system = next((p for p in (f"/usr/bin/{version}", f"/usr/local/bin/{version}") if os.access(p, os.X_OK)), None)
    if system is None:
        pytest.skip(f"{user} cannot run {sys.executable} and there is no system {version}")
    venv = scratch / "venv"
    subprocess.run([system, "-m", "venv", "--without-pip", str(venv)], check=True, capture_output=True)
    import site

    import hera

    paths = [str(Path(hera.__file__).resolve().parent.parent), *site.getsitepackages()]
    site_dir = next((venv / "lib").glob("python*/site-packages"))
    (site_dir / "_hera_tests.pth").write_text(
        "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in paths) + "\n"
    )
    python = str(venv / "bin" / "python")
    if not _runs_hera_as(user, python):
        pytest.skip(f"{user} cannot import hera from {paths} (a directory it may not read)")
    return python


def world_tmpdir() -> Path:
    """A scratch directory that other users can enter (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="hera-test-"))
    path.chmod(0o755)
    return path


# -- where a world's hera keeps things -------------------------------------------------------


def cache_of(world: World) -> Path:
    """The world's cache: the default under its XDG_DATA_HOME."""
    return Path(world.env["XDG_DATA_HOME"]) / "hera" / "agents"


def cached(world: World) -> list[Path]:
    """The agents' files in the world's cache."""
    directory = cache_of(world)
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def runtime_of(world: World) -> Path:
    """hera's runtime directory in the world (pid-files, sockets): ``$XDG_RUNTIME_DIR/hera``."""
    return Path(world.env["XDG_RUNTIME_DIR"]) / "hera"


def with_private_system_dir(world: World) -> World:
    """Point the world's system directory into the world, so no test sees or touches the real one."""
    world.env["HERA_SYSTEM_DIR"] = str(world.root / "system")
    return world


class OtherUser(World):
    """A world whose HOME, working and runtime directories belong to ``user``, and whose commands run as them."""

    def __init__(self, root: Path, user: str, *, python: str) -> None:
        import pwd

        super().__init__(root, python=python)
        self.user = user
        entry = pwd.getpwnam(user)
        for top in (self.root, self.runtime_dir):
            for path in [top, *top.rglob("*")]:
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o755)

    def __call__(self, *args: str, **options: Any) -> Result:  # type: ignore[override]
        return super().__call__(*args, user=self.user, group=_group_of(self.user), extra_groups=[], **options)


_BUILT: dict[str, Path] = {}


def built_instance() -> Path:
    """One abraxas/example instance built by ``hera build`` for the whole run (copy it, never change it)."""
    if "path" not in _BUILT:
        import atexit
        import shutil

        scratch = Path(tempfile.mkdtemp(prefix="hera-built-"))
        atexit.register(shutil.rmtree, scratch, True)
        with World(scratch) as world:
            world("--family", "abraxas", "--layout", "example", "build", "-o", "brain.json", check=True)
        _BUILT["path"] = world.workdir / "brain.json"
    return _BUILT["path"]


def new_uuid(prefix: str = "") -> str:
    """A random UUID (version 4) that starts with the hex digits ``prefix``."""
    import uuid as uuidlib

    bare = (prefix + uuidlib.uuid4().hex[len(prefix):]).lower()
    return str(uuidlib.UUID(bare))


def make_instance(directory: Path, name: str, *, uuid: str | None = None, callsign: str | None = None) -> Path:
    """A fresh instance file ``directory/name``: the shared build under a new uuid (and callsign)."""
    return retag(built_instance(), Path(directory) / name, uuid=uuid or new_uuid(), callsign=callsign)


def make_lived_instance(directory: Path, name: str, *, iteration: int = 1234, callsign: str | None = None) -> Path:
    """An instance that looks as if it had been up: random weights, dynamic state, an iteration count.

    Built from the shared build by hera's own writer, so every checksum is right.
    """
    from datetime import UTC, datetime

    import numpy as np

    from hera.instance import load, save

    base = load(built_instance())
    rng = np.random.default_rng(iteration)
    arrays = {key: rng.standard_normal(value.shape).astype(value.dtype) for key, value in base.arrays.items()}
    arrays["state.membrane"] = rng.standard_normal(1536).astype(np.float32)
    header = base.header.model_copy(
        update={
            "uuid": new_uuid(),
            "callsign": callsign or base.header.callsign,
            "iteration": iteration,
            "dynamic": True,
            "last_up": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "device": "cpu",
        }
    )
    target = Path(directory) / name
    save(target, header, arrays)
    return target


def throwaway_user(*, home: bool = True) -> Iterator[pwd.struct_passwd]:
    """A real local user (``useradd``), removed afterwards; the test is skipped where one cannot be made.

    A generator for ``yield from`` in a fixture: the attacks of other users
    need a real uid, and some (a cache under a home) a real home.
    """
    if os.geteuid() != 0:
        pytest.skip("needs root to make another user")
    useradd, userdel = shutil.which("useradd"), shutil.which("userdel")
    if not (useradd and userdel):
        pytest.skip("useradd/userdel are not available")
    name = f"heratest{secrets.token_hex(3)}"
    made = subprocess.run([useradd, "-m" if home else "-M", "-s", "/usr/sbin/nologin", name], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"useradd failed: {made.stderr.strip()}")
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run([userdel, "-r", name] if home else [userdel, name], capture_output=True)


# -- what another user plants: a family folder whose import leaves a marker --------------------

#: A family folder's pyproject.toml declaring family ``{name}`` (format it).
PYPROJECT = """\
[project]
name = "evil"
version = "0.1.0"

[project.entry-points."hera.families"]
{name} = "evil_family:Evil"
"""

# Whatever the family's name, importing the module is the attack: it leaves a marker.
EVIL_MODULE = """\
open({marker!r}, "a").close()
from hera.family import Family


class Evil(Family):
    pass
"""


def as_user(user: str, cwd: Path, script: str, stdin: str = "") -> None:
    """Run ``sh -c script`` as ``user`` in ``cwd``: how that user would plant files."""
    entry = pwd.getpwnam(user)
    subprocess.run(
        ["sh", "-c", script], cwd=cwd, input=stdin, text=True, check=True, timeout=30,
        user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
    )
