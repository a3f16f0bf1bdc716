"""pid-files and liveness: an up agent is never destroyed or moved, a stale pid-file is never trusted.

An up agent is played by a real process titled as an agent's is
(``hera: <callsign> <uuid8> <family>/<layout>``) with a pid-file written in
hera's runtime directory: it starts in milliseconds, and a test can give it
exactly the wrong pid-file it needs (dead, reused, older than its process,
someone else's, missing). :func:`test_the_agents_own_pid_file_writer_is_believed`
ties the stand-in to what a real agent writes.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from cachekit import (
    FakeAgent,
    cache_of,
    cached,
    dead_pid,
    make_instance,
    mode,
    read_head,
    runtime_of,
    with_private_system_dir,
    write_pid_file,
)
from herakit import one_error_line


@pytest.fixture
def hera(hera):
    """conftest's world, with a system directory of its own."""
    return with_private_system_dir(hera)


@pytest.fixture
def agent(hera):
    """One installed agent, callsign brisk-otter; its header as installed."""
    make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    assert hera("install", "brain.json").rc == 0
    (in_cache,) = cached(hera)
    return read_head(in_cache)


@pytest.fixture
def processes():
    """Processes a test starts (FakeAgents or Popens); all stopped afterwards."""
    started = []
    yield started
    for process in started:
        if isinstance(process, FakeAgent):
            process.stop()
        else:
            process.kill()
            process.wait()


def listed(hera):
    result = hera("agents", "--json")
    assert result.rc == 0, result
    (row,) = json.loads(result.out)
    return row, result.err


def test_an_up_agent_is_listed_with_its_pid_and_cannot_be_destroyed_or_uninstalled(hera, agent, processes):
    up = FakeAgent("brisk-otter", agent["uuid"])
    processes.append(up)
    pid_file = write_pid_file(runtime_of(hera), agent["uuid"], up.pid)

    row, err = listed(hera)
    assert (row["state"], row["pid"]) == ("up", up.pid) and err == ""
    table = hera("agents").out.splitlines()[1].split()
    assert table[3:5] == ["up", str(up.pid)]
    assert json.loads(hera("--callsign", "brisk-otter", "inspect", "--json").out)["pid"] == up.pid

    for verb in ("destroy", "uninstall"):
        refused = hera("--callsign", "brisk-otter", verb)
        one_error_line(refused, f"is up (pid {up.pid}); cannot {verb} it", f"hera --uuid {agent['uuid'][:8]} down", rc=4)
    refused = hera("--callsign", "brisk-otter", "destroy", "--yes")
    assert refused.rc == 4
    assert cached(hera) == [cache_of(hera) / f"{agent['uuid']}.json"]
    assert pid_file.exists()  # a believed pid-file is left alone
    assert not (hera.workdir / f"{agent['uuid']}.json").exists()


def test_a_pid_file_whose_process_is_gone_is_stale_reported_and_removed(hera, agent):
    gone = dead_pid()
    pid_file = write_pid_file(runtime_of(hera), agent["uuid"], gone)

    row, err = listed(hera)

    assert row["state"] == "built" and row["pid"] is None
    assert err == f"hera: brisk-otter ({agent['uuid'][:8]}): removed a stale pid-file: process {gone} is gone\n"
    assert not pid_file.exists()
    assert hera("--callsign", "brisk-otter", "destroy").rc == 0


def test_a_pid_reused_by_another_program_is_stale_and_does_not_block_destroy(hera, agent, processes):
    other = subprocess.Popen(["sleep", "60"])
    processes.append(other)
    pid_file = write_pid_file(runtime_of(hera), agent["uuid"], other.pid)

    result = hera("--callsign", "brisk-otter", "destroy")

    assert result.rc == 0, result
    assert f"removed a stale pid-file: pid {other.pid} now belongs to another program" in result.err
    assert "Traceback" not in result.err
    assert not pid_file.exists() and cached(hera) == []
    assert other.poll() is None  # hera never signals a process it does not own


def test_a_pid_file_older_than_its_process_is_stale_even_if_the_title_matches(hera, agent, processes):
    # the agent died, and a new process (titled alike) got its pid later
    younger = FakeAgent("brisk-otter", agent["uuid"])
    processes.append(younger)
    pid_file = write_pid_file(runtime_of(hera), agent["uuid"], younger.pid, age=60)

    row, err = listed(hera)

    # the pid-file is not believed; the live titled process is then found by its title
    assert f"pid {younger.pid} now belongs to another program" in err
    assert not pid_file.exists()
    assert (row["state"], row["pid"]) == ("up (no pid-file)", younger.pid)


def test_a_pid_file_pointing_at_another_agent_is_stale(hera, agent, processes):
    someone = FakeAgent("calm-lynx", "99999999-0000-4000-8000-000000000000")
    processes.append(someone)
    pid_file = write_pid_file(runtime_of(hera), agent["uuid"], someone.pid)

    row, err = listed(hera)

    assert row["state"] == "built" and row["pid"] is None
    assert f"pid {someone.pid} now belongs to another program" in err
    assert not pid_file.exists()


def test_a_garbled_pid_file_is_stale(hera, agent):
    pid_file = runtime_of(hera) / f"{agent['uuid']}.pid"
    runtime_of(hera).mkdir(mode=0o700, parents=True)
    pid_file.write_text("not a pid\n")

    row, err = listed(hera)

    assert row["state"] == "built" and "pid-file holds no process id" in err
    assert not pid_file.exists()


def test_an_agent_whose_pid_file_was_removed_is_still_found_up(hera, agent, processes):
    orphan = FakeAgent("brisk-otter", agent["uuid"])
    processes.append(orphan)

    row, err = listed(hera)

    assert (row["state"], row["pid"]) == ("up (no pid-file)", orphan.pid) and err == ""
    for verb in ("destroy", "uninstall"):
        refused = hera("--uuid", agent["uuid"], verb)
        one_error_line(refused, f"still running as pid {orphan.pid}", "pid-file is gone", f"kill {orphan.pid}", rc=4)
    assert len(cached(hera)) == 1

    orphan.stop()  # 'kill PID', as the spec says; then it can go
    assert hera("--uuid", agent["uuid"], "destroy").rc == 0


def test_the_agents_own_pid_file_writer_is_believed(tmp_path, processes):
    """What the agent process writes (pidfile.write) is what the checks believe."""
    from hera.cache import pidfile

    uuid = "3f2a9c1e-0000-4000-8000-00000000000a"
    up = FakeAgent("brisk-otter", uuid)
    processes.append(up)
    written = pidfile.write(tmp_path, uuid, up.pid)

    assert written == tmp_path / f"{uuid}.pid" and written.read_text() == f"{up.pid}\n"
    assert mode(written) == 0o600
    assert pidfile.title("brisk-otter", uuid, "abraxas", "example") == up.title
    live = pidfile.check(tmp_path, uuid)
    assert (live.up, live.pid, live.pid_file, live.stale) == (True, up.pid, True, None)
    up.stop()
    live = pidfile.check(tmp_path, uuid)
    assert (live.up, live.stale) == (False, f"process {up.pid} is gone") and not written.exists()


def test_private_directories_are_0700_and_must_be_ours(tmp_path):
    from hera.cache.paths import private_dir
    from hera.errors import HeraError

    fresh = private_dir(tmp_path / "a" / "run")
    assert mode(fresh) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    assert mode(private_dir(loose)) == 0o700
    if os.geteuid() == 0:
        theirs = tmp_path / "theirs"
        theirs.mkdir()
        os.chown(theirs, 65534, 65534)
        with pytest.raises(HeraError, match="belongs to another user"):
            private_dir(theirs)

