"""An agent's life through real processes: up in every mode, refusals, listings, logs, down, resume.

Every agent here is started by ``hera up`` as a user starts one: a fresh
interpreter in a session of its own, titled, with its pid-file and control
socket, running the ``tick`` test family (tests/families/tick) cloned into
the working directory. The tests look at what a user can see: what hera
prints, exit codes, processes, files in the cache and the runtime directory.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import time

import psutil
import pytest

from agent_helpers import (
    alive,
    build,
    cache_path,
    cached_arrays,
    cached_header,
    client,
    log_file,
    pid_file,
    reap_agents,
    request,
    runtime_dir,
    same_arrays,
    socket_path,
    tick_world,
    up_daemon,
    up_daemons,
    wait_for,
    wait_gone,
    wait_up,
)
from herakit import one_error_line


@pytest.fixture
def world(hera):
    tick_world(hera)
    yield hera
    reap_agents(hera)


def agents_json(world) -> dict[str, dict]:
    result = world("agents", "--json", check=True)
    return {row["uuid"]: row for row in json.loads(result.out)}


def test_daemon_up_shows_live_state_refuses_a_second_up_and_down_saves_everything(world):
    brain = build(world)
    up = up_daemon(world, "t.json")
    assert f"installed {brain.callsign} {brain.uuid}" in up.result.out  # up FILE installs it
    assert (up.uuid, up.callsign, up.device) == (brain.uuid, brain.callsign, "cpu")

    # One process of its own: its own session, titled for ps, its pid in the pid-file.
    process = psutil.Process(up.pid)
    assert os.getsid(up.pid) == up.pid != os.getsid(0)
    assert " ".join(process.cmdline()).startswith(f"hera: {brain.callsign} {brain.uuid[:8]} tick/example")
    assert pid_file(world, brain.uuid).read_text().strip() == str(up.pid)
    # The first up of a fresh instance already gives the cache a complete, resumable state.
    assert cached_header(world, brain.uuid).dynamic

    # hera agents asks the agent itself: state, iteration, rate, device, mode, port.
    first = agents_json(world)[brain.uuid]
    assert (first["state"], first["pid"], first["device"], first["mode"], first["port"]) == (
        "running", up.pid, "cpu", "daemon", up.port
    )
    later = wait_for(
        lambda: (row := agents_json(world)[brain.uuid])["iteration"] > first["iteration"] and row, what="iterations"
    )
    assert later["state"] == "running" and later["rate"] > 0
    table = world("agents", check=True).out
    assert "running" in table and "daemon" in table and str(up.pid) in table

    # A second up, and destroy, uninstall and grow of an up agent, are refused with one clear line.
    one_error_line(world("up", "t.json"), "already up", str(up.pid))
    one_error_line(world("--uuid", brain.uuid[:8], "up", "--daemon"), "already up")
    one_error_line(world("--uuid", brain.uuid[:8], "destroy", "--yes"), "is up", "down it first")
    one_error_line(world("--uuid", brain.uuid[:8], "uninstall"), "is up")
    one_error_line(world("--uuid", brain.uuid[:8], "grow", "--set", "neurons=128"), "is up")
    assert alive(up.pid)

    # Several controllers may watch; one at a time holds the prompt.
    with client(world, brain.uuid) as first_controller, client(world, brain.uuid) as second_controller:
        first_controller.request("attach")
        with pytest.raises(Exception, match="another controller holds the prompt"):
            second_controller.request("attach")
        assert second_controller.request("status")["attached"] is True
        first_controller.request("detach")
        second_controller.request("attach")
        second_controller.request("detach")

    logs = world("--uuid", brain.uuid[:8], "logs", check=True).out
    assert f"up: {brain.callsign} {brain.uuid} on cpu (pid {up.pid})" in logs

    # Plain `hera down` finds the only agent that is up.
    down = world("down", check=True)
    assert down.out.startswith(f"down {brain.callsign} {brain.uuid} at iteration ")
    iteration = int(down.out.split(" at iteration ")[1].split()[0])
    wait_gone(up.pid)
    assert not pid_file(world, brain.uuid).exists()
    assert not socket_path(world, brain.uuid).exists()
    assert not up.connection.exists()
    header = cached_header(world, brain.uuid)
    assert header.dynamic and header.iteration == iteration > later["iteration"]
    assert header.device == "cpu" and header.last_up is not None
    assert agents_json(world)[brain.uuid]["state"] == "down"
    assert f"down: down at iteration {iteration}" in world("--uuid", brain.uuid[:8], "logs").out
    assert cache_path(world, brain.uuid).stat().st_mode & 0o777 == 0o600


def test_normal_mode_prints_a_banner_then_stays_quiet_and_a_killed_controller_leaves_the_agent_up(world):
    brain = build(world)
    controller = world.popen("up", "t.json")
    try:
        pid = wait_up(world, brain.uuid)["pid"]
        agent = psutil.Process(pid)
        assert agent.ppid() == controller.pid  # the controller started it ...
        assert os.getsid(pid) == pid != os.getsid(controller.pid)  # ... in a session of its own
        wait_for(lambda: request(world, brain.uuid, "status")["iteration"] > 0, what="iterations")
        assert request(world, brain.uuid, "status")["mode"] == "attached"

        time.sleep(0.5)  # normal mode: the banner, then nothing while it runs
        controller.send_signal(signal.SIGKILL)
        controller.wait(10)
        out, err = controller.communicate(timeout=10)
        lines = out.splitlines()
        assert lines[0].startswith(f"installed {brain.callsign} {brain.uuid}")
        assert lines[1].startswith(f"up {brain.callsign} {brain.uuid} (pid {pid}) on cpu")
        assert "running from iteration 0" in lines[1]
        assert "Ctrl-C: standby" in lines[2] and len(lines) == 3, out
        assert err == ""

        # The agent runs on, detached from the dead controller.
        assert alive(pid)
        before = request(world, brain.uuid, "status")["iteration"]
        wait_for(lambda: request(world, brain.uuid, "status")["iteration"] > before, what="iterations after the controller died")
        assert world("down", "t.json", check=True).out.startswith(f"down {brain.callsign}")
        wait_gone(pid)
        assert not pid_file(world, brain.uuid).exists()
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.communicate()


def test_silent_mode_prints_nothing_autosaves_atomically_and_ends_when_downed(world):
    brain = build(world)
    controller = world.popen("up", "t.json", "--silent", env={"HERA_AUTOSAVE_INTERVAL": "0.5"})
    try:
        wait_up(world, brain.uuid)
        # Autosave: the cached iteration advances while it runs, and the file loads at every look.
        seen = [cached_header(world, brain.uuid).iteration]
        deadline = time.monotonic() + 5
        while len(set(seen)) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            seen.append(cached_header(world, brain.uuid).iteration)
        assert len(set(seen)) >= 3 and seen == sorted(seen), seen
        header, arrays = cached_arrays(world, brain.uuid)
        assert header.iteration > 0 and {"weights", "counts", "ring", "pending"} <= set(arrays)
        assert world("down", "t.json", check=True).rc == 0
        out, err = controller.communicate(timeout=20)
        assert (controller.returncode, out, err) == (0, "", "")
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.communicate()


def test_simulate_prints_the_loading_plan_and_touches_nothing(world):
    brain = build(world)
    result = world("up", "t.json", "--simulate", check=True)
    assert f"agent     {brain.callsign} {brain.uuid} (tick/example)" in result.out
    assert "device    cpu" in result.out and "verdict   fits" in result.out
    assert "needs" in result.out and "free" in result.out
    # Nothing installed, nothing started, nothing in the runtime directory.
    assert not cache_path(world, brain.uuid).exists()
    assert not runtime_dir(world).exists() or not list(runtime_dir(world).iterdir())
    assert not log_file(world, brain.uuid).exists()

    world("install", "t.json", check=True)
    planned = world("--uuid", brain.uuid[:8], "up", "--simulate", "--device", "cpu", check=True)
    assert "verdict   fits" in planned.out
    assert not pid_file(world, brain.uuid).exists()
    one_error_line(world("--uuid", brain.uuid[:8], "up", "--simulate", "--device", "cuda:7"), "no device 'cuda:7'")


def test_an_agent_too_big_for_the_device_is_refused_before_any_kernel_with_a_report(world):
    brain = build(world, "huge.json", layout="huge")
    simulated = world("up", "huge.json", "--simulate")
    assert simulated.rc == 1
    assert "verdict   does NOT fit" in simulated.out
    assert "would fit tick/example" in simulated.out

    refused = world("up", "huge.json")
    assert refused.rc == 1 and "Traceback" not in refused.err
    report, last = refused.err.splitlines()[:-1], refused.err.splitlines()[-1]
    text = "\n".join(report)
    assert "needs     1024.0 TiB on the device" in text  # what is needed
    assert "free " in text  # what is free
    assert "would fit tick/example" in text  # which layout would
    assert last.startswith(f"hera: agent {brain.callsign} needs more than cpu has free")
    assert not pid_file(world, brain.uuid).exists() and not log_file(world, brain.uuid).exists()


def test_down_then_up_resumes_bit_exactly(world):
    """N+M iterations straight equal N, down, up, M: every cached array, bit for bit."""
    n, m = 25, 4000
    text = "resume me exactly, byte by byte, please\n"  # 40 bytes: some still queued at the down

    straight = build(world, "straight.json")
    resumed = build(world, "resumed.json")  # the same seed: the same brain under another uuid

    # The straight run and the first leg of the resumed one side by side.
    up_daemons(world, ("straight.json", "--paused"), ("resumed.json", "--paused"))
    with client(world, straight.uuid) as agent:
        agent.request("feed", text=text)
        assert agent.request("step", n=n + m, timeout=None)["iteration"] == n + m
    world("down", "straight.json", check=True)

    with client(world, resumed.uuid) as agent:
        agent.request("feed", text=text)
        assert agent.request("step", n=n, timeout=None)["iteration"] == n
    world("down", "resumed.json", check=True)
    header, arrays = cached_arrays(world, resumed.uuid)
    assert header.iteration == n
    assert 0 < len(arrays["pending"]) < len(text)  # input still queued went down with it
    assert bytes(arrays["hera.records"][:, 2].tolist()) == text.encode()[:n]  # and records nobody had read yet
    assert arrays["hera.io"].tolist() == [len(text), n, n]  # fed, presented, answered

    again = up_daemon(world, "resumed.json", "--paused")
    with client(world, resumed.uuid) as agent:
        assert agent.request("status")["iteration"] == n
        assert agent.request("step", n=m, timeout=None)["iteration"] == n + m
    world("down", "resumed.json", check=True)
    wait_gone(again.pid)

    straight_header, straight_arrays = cached_arrays(world, straight.uuid)
    resumed_header, resumed_arrays = cached_arrays(world, resumed.uuid)
    assert straight_header.iteration == resumed_header.iteration == n + m
    same_arrays(straight_arrays, resumed_arrays)
    assert bytes(resumed_arrays["hera.records"][:, 2].tolist()) == text.encode()


def _abraxas_missing() -> str | None:
    try:
        if importlib.util.find_spec("abraxas") is None or importlib.util.find_spec("abraxas.runtime") is None:
            return "the abraxas family or its runtime module is not there"
    except ImportError as exc:
        return f"abraxas does not import: {exc}"
    return None


def test_abraxas_example_resumes_bit_exactly(hera):
    """The reference family, through real processes: N+M straight equal N, down, up, M."""
    missing = _abraxas_missing()
    if missing:
        pytest.skip(missing)
    from agent_helpers import kernel_cache

    hera.env["XDG_CACHE_HOME"] = str(kernel_cache())
    n, m = 15, 25
    try:
        for name in ("straight.json", "resumed.json"):
            hera("--family", "abraxas", "--layout", "example", "--seed", "11", "build", "-o", name, check=True)
        from hera.instance import read_header

        uuids = {name: read_header(hera.workdir / name).uuid for name in ("straight.json", "resumed.json")}
        # The straight run and the first leg of the resumed one side by side.
        first = [hera.popen("up", name, "--paused", "--daemon") for name in uuids]
        errors = [process.communicate(timeout=300)[1] for process in first]
        if any("NotImplementedError" in err for err in errors):
            pytest.skip(f"Abraxas.runtime is not written yet: {' '.join(errors).strip()}")
        assert [process.returncode for process in first] == [0, 0], errors
        for name, steps in (("straight.json", n + m), ("resumed.json", n)):
            with client(hera, uuids[name]) as agent:
                assert agent.request("step", n=steps, timeout=None)["iteration"] == steps
            hera("down", name, check=True)
        up = hera("up", "resumed.json", "--paused", "--daemon")
        assert up.rc == 0, str(up)
        with client(hera, uuids["resumed.json"]) as agent:
            assert agent.request("step", n=m, timeout=None)["iteration"] == n + m
        hera("down", "resumed.json", check=True)
        straight_header, straight_arrays = cached_arrays(hera, uuids["straight.json"])
        resumed_header, resumed_arrays = cached_arrays(hera, uuids["resumed.json"])
        assert straight_header.iteration == resumed_header.iteration == n + m
        same_arrays(straight_arrays, resumed_arrays)
    finally:
        reap_agents(hera)


def test_logs_follow_an_agent_log_across_its_rotation(world):
    """``logs -f`` keeps following when the log rotates (5 MiB, renamed to .log.1, a new .log begun)."""
    import select

    brain = build(world)
    world("install", "t.json", check=True)
    log = log_file(world, brain.uuid)
    log.parent.mkdir(parents=True)
    log.write_text("".join(f"old line {i}\n" for i in range(10)))
    follower = world.popen("--uuid", brain.uuid[:8], "logs", "-f", "-n", "3")
    seen = ""

    def until(text: str) -> None:
        nonlocal seen
        deadline = time.monotonic() + 20
        while text not in seen:
            assert time.monotonic() < deadline, f"{text!r} never came; saw {seen!r}"
            if select.select([follower.stdout], [], [], 0.2)[0]:
                seen += os.read(follower.stdout.fileno(), 65536).decode()

    try:
        until("old line 9\n")
        assert "old line 6" not in seen and "old line 7\n" in seen  # the last three
        with log.open("a") as handle:
            handle.write("before the rotation\n")
        until("before the rotation\n")
        log.rename(log.with_name(log.name + ".1"))
        log.write_text("after the rotation\n")
        until("after the rotation\n")
    finally:
        follower.kill()
        follower.communicate()
    one_error_line(world("--uuid", brain.uuid[:8], "logs", env={"XDG_STATE_HOME": str(world.home / "elsewhere")}), "has no log yet")


def test_a_damaged_cache_is_refused_with_one_line_and_left_as_it_was(world):
    import numpy as np

    from hera.instance import load, save

    brain = build(world)
    world("install", "t.json", check=True)
    cached = cache_path(world, brain.uuid)
    # As a down leaves it: real state in every array (written by hera's own writer, checksums right).
    instance = load(cached)
    arrays = dict(instance.arrays, weights=np.arange(64, dtype=np.float32), counts=np.arange(64, dtype=np.int32))
    arrays |= {"ring": np.ones((3, 64), np.int32), "pending": np.zeros(0, np.uint8)}
    save(cached, instance.header.model_copy(update={"dynamic": True, "iteration": 99}), arrays, mode=0o600)

    # A flipped byte in an array: the agent process finds it while loading, says so, and goes.
    data = bytearray(cached.read_bytes())
    at = data.index(b'"data": "', data.index(b'"weights"')) + len(b'"data": "') + 2
    data[at] = ord("B") if data[at] != ord("B") else ord("C")
    cached.write_bytes(bytes(data))
    line = one_error_line(world("up", "t.json", "--daemon"), str(cached), "arrays.weights")
    assert "Traceback" not in line and "Error:" not in line
    assert cached.read_bytes() == bytes(data)  # nothing written over it
    assert not pid_file(world, brain.uuid).exists() and not socket_path(world, brain.uuid).exists()
    assert agents_json(world)[brain.uuid]["state"] != "up"

    # A header that does not parse: refused before any process starts.
    cached.write_text("garbage")
    one_error_line(world("--uuid", brain.uuid[:8], "up"), "cannot up", "malformed JSON")
