"""``up`` racing ``destroy`` and ``uninstall``: never a running agent whose cached file is gone.

destroy and uninstall check, under the store's lock, that the agent is not
up, then remove its cached file. If ``up`` started the agent without that
lock, an agent could come up between the check and the removal: it would run
on with its cache file gone and write it back at its next save (SIGTERM, an
autosave), an agent the user had just destroyed.

The window is the time a destroy spends between its check and its unlink, a
few milliseconds on an idle disk. These tests make it as wide as a slow or
busy disk would, by delaying the unlink of the agent's cached file in the
destroying process (``strace`` fault injection, the way the reliability tests
fill a tmpfs), and start ``up`` at several moments around it. Everything else
is real: ``hera`` commands as a user runs them, real agent processes (the
``tick`` test family).
"""

from __future__ import annotations

import shutil
import subprocess
import time

import psutil
import pytest

from agent_helpers import alive, build, cache_path, reap_agents, tick_world, wait_gone
from cachekit import retag
from herakit import Result

#: How long the destroying process's unlink of the cached file takes (a slow disk).
SLOW_UNLINK_S = 2.0
#: When each trial's ``up`` starts, after its destroy or uninstall (seconds).
UP_OFFSETS = (0.0, 0.3, 0.6, 0.9)


@pytest.fixture
def world(hera):
    tick_world(hera)
    yield hera
    reap_agents(hera)


def _strace_can_delay() -> bool:
    """Whether strace may trace a child here and delay its system calls (ptrace may be forbidden)."""
    strace = shutil.which("strace")
    if strace is None:
        return False
    done = subprocess.run(
        [strace, "-qq", "-o", "/dev/null", "-e", "trace=getpid", "-e", "inject=getpid:delay_enter=1", "true"],
        capture_output=True,
    )
    return done.returncode == 0


def slow_unlink(world, path, *args: str) -> subprocess.Popen[str]:
    """``hera ARGS`` whose unlink of ``path`` takes SLOW_UNLINK_S (strace delays the call, nothing else)."""
    delay = int(SLOW_UNLINK_S * 1e6)
    return subprocess.Popen(
        [
            "strace", "-f", "-qq", "-o", "/dev/null", "-P", str(path),
            "-e", "trace=unlink,unlinkat", "-e", f"inject=unlink,unlinkat:delay_enter={delay}",
            *world.command(*args),
        ],
        env=world._env(None),
        cwd=world.workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str], args: tuple[str, ...]) -> Result:
    out, err = process.communicate(timeout=120)
    return Result(args, process.returncode, out, err)


def agent_process(uuid: str) -> int | None:
    """The live process titled as agent ``uuid``, if any (how ``ps`` shows it)."""
    for process in psutil.process_iter(["cmdline"]):
        words = " ".join(process.info.get("cmdline") or []).split()
        if len(words) >= 3 and words[0] == "hera:" and words[2] == uuid[:8] and alive(process.pid):
            return process.pid
    return None


def clean_failure(result: Result) -> None:
    assert "Traceback" not in result.err, str(result)
    assert result.rc in (3, 4) and len(result.err.strip().splitlines()) == 1 and result.err.startswith("hera: "), str(result)


@pytest.mark.skipif(not _strace_can_delay(), reason="needs strace allowed to trace (fault injection)")
def test_destroy_or_uninstall_racing_up_never_leaves_an_agent_running_without_its_cache_file(world):
    brain = build(world)
    uuids = []
    for n, _ in enumerate(UP_OFFSETS):
        uuid = f"{n:08x}-0000-4000-8000-{brain.uuid[-12:]}"
        retag(brain.path, world.workdir / f"{n}.json", uuid=uuid, callsign=f"racer-{n}")
        world("install", f"{n}.json", check=True)
        uuids.append(uuid)

    outcomes = []
    for n, (uuid, offset) in enumerate(zip(uuids, UP_OFFSETS, strict=True)):
        remover = ("--uuid", uuid, "destroy") if n % 2 == 0 else ("--uuid", uuid, "uninstall", "-o", f"out-{n}.json")
        cached = cache_path(world, uuid)
        removing = slow_unlink(world, cached, *remover)
        time.sleep(offset)
        upping = world.popen("--uuid", uuid, "up", "--daemon")
        removed, up = finish(removing, remover), finish(upping, ("up", uuid))
        running = agent_process(uuid)
        outcomes.append((remover[2], offset, removed.rc, up.rc, running is not None, cached.exists()))

        # The one invariant: an agent that runs has its cached file, and only one of the two won.
        assert running is None or cached.exists(), (outcomes, str(removed), str(up))
        assert (removed.rc == 0) != (up.rc == 0), (outcomes, str(removed), str(up))
        for result in (removed, up):
            if result.rc != 0:
                clean_failure(result)
        if up.rc == 0:
            assert running is not None and cached.exists()
            assert "is up" in removed.err
            world("--uuid", uuid, "down", check=True)
            wait_gone(running)
        else:
            assert running is None and not cached.exists()
            # removed while up waited for the lock, or before up looked at all
            assert "removed meanwhile" in up.err or "no installed agent" in up.err, str(up)
    print(f"up racing destroy/uninstall: {len(outcomes)} trials {outcomes}")


def test_up_at_once_with_ten_destroys_leaves_a_running_agent_with_its_file_or_neither(world):
    """The plain race, no delay: eleven commands started together, one up and ten destroys."""
    brain = build(world)
    world("install", "t.json", check=True)
    cached = cache_path(world, brain.uuid)
    commands = [("--uuid", brain.uuid, "up", "--daemon")] + [("--uuid", brain.uuid, "destroy")] * 10

    started = [(args, world.popen(*args)) for args in commands]
    results = [finish(process, args) for args, process in started]

    up, destroys = results[0], results[1:]
    running = agent_process(brain.uuid)
    assert running is None or cached.exists(), [str(r) for r in results]
    assert sum(r.rc == 0 for r in results) == 1, [str(r) for r in results]
    for result in results:
        if result.rc != 0:
            clean_failure(result)
    if up.rc == 0:
        assert running is not None and all("is up" in r.err for r in destroys)
        world("--uuid", brain.uuid, "down", check=True)
        wait_gone(running)
    else:
        assert running is None and not cached.exists()
