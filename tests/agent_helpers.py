"""Helpers for the tests that up real agents: the tick family in a user's world, and handles on agents.

Not a test module. The agent tests (``test_agent_*.py``) import from it; the
world itself (temporary HOME, ``hera(...)``) is conftest's ``hera`` fixture.

* :func:`tick_world` turns a world into one where the ``tick`` test family
  (``tests/families/tick``) is cloned in the working directory, as a user
  would clone a family, and compiled Taichi kernels are shared by every test
  of the run (the offline kernel cache lives under ``XDG_CACHE_HOME``).
* :func:`build`, :func:`up_daemon`, :func:`client`, :func:`cached_header`
  and :func:`cached_arrays` are the steps every test repeats.
* :func:`reap_agents` kills whatever agent a failed test left running, so
  one failure never leaves processes behind or blocks the next test.

Every agent here is a real process started by ``hera up``: a fresh
interpreter, its own session, its pid-file and control socket.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from herakit import Result, World

TICK = Path(__file__).resolve().parent / "families" / "tick"
T = TypeVar("T")

UP_LINE = re.compile(
    r"^up (?P<callsign>\S+) (?P<uuid>[0-9a-f-]{36}) pid (?P<pid>\d+) device (?P<device>\S+) "
    r"port (?P<port>\d+) connection (?P<connection>\S+)$",
    re.M,
)
BUILT_LINE = re.compile(r"^built (?P<callsign>\S+) (?P<uuid>[0-9a-f-]{36}) \((?P<model>\S+)\) -> (?P<path>.+)$", re.M)


_KERNEL_CACHE: dict[str, Path] = {}


def kernel_cache() -> Path:
    """One scratch directory for compiled Taichi kernels, shared by every test of the run."""
    if "path" not in _KERNEL_CACHE:
        import atexit
        import tempfile

        path = Path(tempfile.mkdtemp(prefix="hera-kernels-"))
        atexit.register(shutil.rmtree, path, True)
        _KERNEL_CACHE["path"] = path
    return _KERNEL_CACHE["path"]


def tick_world(world: World) -> World:
    """``world`` with tick cloned in its working directory and the run's shared kernel cache.

    hera keeps compiled kernels in its user cache directory (under
    ``XDG_CACHE_HOME``), so pointing that at one directory for the run makes
    every agent after the first skip compiling.
    """
    shutil.copytree(TICK, world.workdir / "tick", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    world.env["XDG_CACHE_HOME"] = str(kernel_cache())
    return world


@dataclass(frozen=True)
class Built:
    uuid: str
    callsign: str
    path: Path


def build(world: World, name: str = "t.json", *options: str, layout: str = "example", seed: int | None = 7) -> Built:
    """``hera --family tick --layout LAYOUT [--seed N] [OPTIONS] build -o NAME`` in the world."""
    args = ["--family", "tick", "--layout", layout, *(["--seed", str(seed)] if seed is not None else []), *options]
    result = world(*args, "build", "-o", name, check=True)
    found = BUILT_LINE.search(result.out)
    assert found, str(result)
    return Built(found["uuid"], found["callsign"], world.workdir / name)


@dataclass(frozen=True)
class Up:
    """What ``hera up --daemon`` printed."""

    uuid: str
    callsign: str
    pid: int
    device: str
    port: int
    connection: Path
    result: Result


def up_daemon(world: World, *args: str, env: dict[str, str | None] | None = None) -> Up:
    """``hera up ARGS --daemon``; asserts it worked and returns what it printed."""
    return _parse_up(world("up", *args, "--daemon", env=env))


def up_daemons(world: World, *commands: tuple[str, ...]) -> list[Up]:
    """Several ``hera up ARGS --daemon`` at once (agents start in parallel: a test waits for one start, not many)."""
    started = [(args, world.popen("up", *args, "--daemon")) for args in commands]
    results = []
    for args, process in started:
        out, err = process.communicate(timeout=120)
        results.append(_parse_up(Result(("up", *args, "--daemon"), process.returncode, out, err)))
    return results


def _parse_up(result: Result) -> Up:
    assert result.rc == 0, str(result)
    found = UP_LINE.search(result.out)
    assert found, str(result)
    return Up(
        found["uuid"], found["callsign"], int(found["pid"]), found["device"], int(found["port"]), Path(found["connection"]), result
    )


def runtime_dir(world: World) -> Path:
    """hera's runtime directory in the world: pid-files, sockets, connection files."""
    return world.runtime_dir / "hera"


def socket_path(world: World, uuid: str) -> Path:
    return runtime_dir(world) / f"{uuid}.sock"


def pid_file(world: World, uuid: str) -> Path:
    return runtime_dir(world) / f"{uuid}.pid"


def cache_path(world: World, uuid: str) -> Path:
    return world.home / ".local" / "share" / "hera" / "agents" / f"{uuid}.json"


def log_file(world: World, uuid: str) -> Path:
    return world.home / ".local" / "state" / "hera" / "logs" / f"{uuid}.log"


def client(world: World, uuid: str, timeout: float = 30.0) -> Any:
    """An :class:`hera.manager.client.AgentClient` on the agent's unix socket (use it as a context manager)."""
    from hera.manager.client import AgentClient

    return AgentClient.unix(socket_path(world, uuid), timeout=timeout)


def wait_up(world: World, uuid: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the agent answers on its socket (its pid-file comes first, while it loads); its status."""

    def answered() -> dict[str, Any] | None:
        from hera.errors import HeraError

        if not socket_path(world, uuid).exists():
            return None
        try:
            return request(world, uuid, "status")
        except HeraError:
            return None

    return wait_for(answered, timeout, f"agent {uuid[:8]} to answer")


def request(world: World, uuid: str, op: str, **args: Any) -> Any:
    """One request on a connection of its own."""
    with client(world, uuid) as agent:
        return agent.request(op, **args)


def cached_header(world: World, uuid: str) -> Any:
    from hera.instance import read_header

    return read_header(cache_path(world, uuid))


def cached_arrays(world: World, uuid: str) -> tuple[Any, dict[str, Any]]:
    """The header and every array of the agent's cached file (the file as ``down`` left it)."""
    from hera.instance import load

    instance = load(cache_path(world, uuid))
    return instance.header, instance.arrays


def snapshot(world: World, uuid: str) -> tuple[int, dict[str, Any]]:
    """The live agent's iteration and every state array, through the ``state`` request."""
    from hera.agent.snapshot import read_snapshot

    reply = request(world, uuid, "state")
    return read_snapshot(Path(reply["path"]))


def same_arrays(left: dict[str, Any], right: dict[str, Any]) -> None:
    """Assert two sets of arrays are the same names, dtypes, shapes and bytes."""
    assert sorted(left) == sorted(right)
    for name in left:
        a, b = left[name], right[name]
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), f"array {name} differs"


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, what: str = "the condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie counts as dead)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_gone(pid: int, timeout: float = 20.0) -> None:
    wait_for(lambda: not alive(pid), timeout, f"process {pid} to exit")


def agent_pids(world: World) -> list[int]:
    """Live agent processes of this world: by pid-file, and by title for those whose pid-file went."""
    import psutil

    found = set()
    directory = runtime_dir(world)
    uuids = [p.stem for p in directory.glob("*.pid")] if directory.is_dir() else []
    for path in directory.glob("*.pid") if directory.is_dir() else []:
        try:
            found.add(int(path.read_text().split()[0]))
        except (OSError, ValueError, IndexError):
            pass
    cache = cache_path(world, "x").parent
    uuids += [p.stem for p in cache.glob("*.json")] if cache.is_dir() else []
    short = {uuid[:8] for uuid in uuids}
    for process in psutil.process_iter(["cmdline"]):
        words = " ".join(process.info.get("cmdline") or []).split()
        if len(words) >= 3 and words[0] == "hera:" and words[2] in short:
            found.add(process.pid)
    return [pid for pid in found if alive(pid)]


def module_tick_world(tmp_path_factory: Any, name: str) -> Iterator[World]:
    """The body of a module-scoped ``world`` fixture: a tick world of its own, its agents reaped at the end.

    ``yield from module_tick_world(tmp_path_factory, "status")`` in the fixture.
    """
    with World(tmp_path_factory.mktemp(name)) as hera:
        tick_world(hera)
        yield hera
        reap_agents(hera)


def reap_agents(world: World) -> None:
    """Kill every agent process this world still has (after a failed test)."""
    for pid in agent_pids(world):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in agent_pids(world):
        wait_gone(pid, 10)


def no_core_dumps() -> None:
    """preexec_fn for commands whose agents are meant to dump core: the limit is inherited, no core is written."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
