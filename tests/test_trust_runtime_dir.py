"""The runtime directory, its files and sockets: nothing another user made there is believed or followed.

Without ``XDG_RUNTIME_DIR`` hera keeps pid-files, sockets, locks and
connection files in ``/tmp/hera-<uid>``, a name any local user can take first
in the shared, sticky ``/tmp``. These tests take it first as ``nobody`` (a
symbolic link to a directory of root's; a real directory holding a fake
agent: a socket served by a process of nobody's, titled as root's agent, and
a pid-file naming it), then run root's ``hera`` without ``XDG_RUNTIME_DIR``
and check that every command refuses in one line, follows nothing, changes
nothing and talks to no one. Inside a private runtime directory, planted
links are replaced, never written through, and a socket is believed only if
a process of the caller's own serves it.

Skipped unless the tests run as root (acting as nobody needs it). The tests
remove the ``/tmp/hera-<uid>`` they make.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent_helpers import alive, build, reap_agents, request, runtime_dir, tick_world, up_daemon, wait_gone
from cachekit import FakeAgent, make_instance, other_user_python, read_head, with_private_system_dir, write_pid_file
from herakit import World, one_error_line

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

NOBODY = "nobody"

#: A process that plays a hera agent: titled as one, serving its protocol on a unix socket, noting every request.
FAKE_AGENT = r"""
import json, os, signal, socket, sys, threading
import setproctitle

path, uuid, title, record = sys.argv[1:5]
setproctitle.setproctitle(title)
for name in ("SIGTTIN", "SIGTTOU", "SIGHUP"):
    signal.signal(getattr(signal, name), signal.SIG_IGN)
server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
server.bind(path)
os.chmod(path, 0o777)
server.listen(8)
RESULTS = {
    "status": {"state": "running", "iteration": 1, "uuid": uuid, "mode": "daemon", "pid": os.getpid()},
    "down": {"iteration": 99, "path": "/tmp/chosen-by-the-attacker"},
    "read": {"data": "", "records": [], "dropped": 0},
}

def serve(conn):
    conn.sendall(json.dumps({"hera": 1, "uuid": uuid, "nonce": "0" * 32, "auth": False}).encode() + b"\n")
    for line in conn.makefile("rb"):
        with open(record, "ab") as out:
            out.write(line)
        request = json.loads(line)
        reply = {"id": request["id"], "ok": True, "result": RESULTS.get(request["op"])}
        conn.sendall(json.dumps(reply).encode() + b"\n")

print("ready", flush=True)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


@pytest.fixture(scope="module")
def nobody_python(scratch: Path) -> str:
    return other_user_python(NOBODY, scratch)


@pytest.fixture
def fallback() -> Iterator[Path]:
    """``/tmp/hera-<uid>``, the runtime directory of a hera without XDG_RUNTIME_DIR; removed afterwards."""
    path = Path(f"/tmp/hera-{os.getuid()}")
    if os.path.lexists(path):
        pytest.skip(f"{path} exists already: another hera run of this user is using it")
    yield path
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


@pytest.fixture
def world(hera: World) -> Iterator[World]:
    tick_world(with_private_system_dir(hera))
    yield hera
    reap_agents(hera)


def as_nobody(*command: str) -> None:
    subprocess.run(list(command), user=NOBODY, group=_group(), extra_groups=[], check=True)


def _group() -> int:
    return pwd.getpwnam(NOBODY).pw_gid


class Impostor:
    """nobody's fake agent: a process titled as root's agent ``uuid``, serving a unix socket at ``path``."""

    def __init__(self, python: str, scratch: Path, path: Path, uuid: str, title: str) -> None:
        program = scratch / "fake_agent.py"
        program.write_text(FAKE_AGENT)
        program.chmod(0o644)
        notes = scratch / "impostor-notes"  # nobody's to write in
        notes.mkdir(exist_ok=True)
        os.chown(notes, pwd.getpwnam(NOBODY).pw_uid, _group())
        self.record = notes / f"record-{uuid[:8]}"
        self.process = subprocess.Popen(
            [python, str(program), str(path), uuid, title, str(self.record)],
            user=NOBODY,
            group=_group(),
            extra_groups=[],
            stdout=subprocess.PIPE,
            text=True,
            cwd="/",
        )
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "ready"

    @property
    def pid(self) -> int:
        return self.process.pid

    def heard(self) -> list[dict]:
        """Every request the impostor was sent."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_bytes().splitlines()]

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


NO_XDG = {"XDG_RUNTIME_DIR": None}


def test_a_symlink_planted_as_the_fallback_runtime_directory_is_refused_and_never_followed(world, fallback, scratch):
    precious = scratch / "precious"  # stands for /etc or any directory of root's
    precious.mkdir(mode=0o755)
    precious.chmod(0o755)
    (precious / "keep.txt").write_text("root's\n")
    as_nobody("ln", "-s", str(precious), str(fallback))
    brain = build(world)
    world("install", "t.json", check=True)

    refused = world("--uuid", brain.uuid[:8], "up", "--daemon", env=NO_XDG)

    one_error_line(refused, str(fallback), "symbolic link", "XDG_RUNTIME_DIR", rc=1)
    assert stat.S_IMODE(precious.stat().st_mode) == 0o755
    assert sorted(p.name for p in precious.iterdir()) == ["keep.txt"]
    assert fallback.is_symlink()
    for args in (("agents",), ("--uuid", brain.uuid[:8], "down"), ("--uuid", brain.uuid[:8], "signal", "SIGTERM")):
        one_error_line(world(*args, env=NO_XDG), str(fallback), "symbolic link")
    assert sorted(p.name for p in precious.iterdir()) == ["keep.txt"]


def test_a_fallback_runtime_directory_made_by_another_user_is_believed_by_no_command(world, fallback, scratch, nobody_python):
    brain = build(world)
    real = up_daemon(world, "t.json")  # the real agent, up with XDG_RUNTIME_DIR set
    as_nobody("mkdir", "-m", "0755", str(fallback))
    title = f"hera: {brain.callsign} {brain.uuid[:8]} tick/example"
    impostor = Impostor(nobody_python, scratch, fallback / f"{brain.uuid}.sock", brain.uuid, title)
    try:
        as_nobody("sh", "-c", f"echo {impostor.pid} > {fallback / (brain.uuid + '.pid')}")
        uuid8 = brain.uuid[:8]

        for args, stdin in (
            (("agents", "--json"), None),
            (("--uuid", uuid8, "signal", "SIGTTIN"), "the owner's secret input\n"),
            (("--uuid", uuid8, "down"), None),
            (("--uuid", uuid8, "up", "--daemon"), None),
        ):
            result = world(*args, env=NO_XDG, input=stdin, timeout=60)
            one_error_line(result, str(fallback), "belongs to another user", "XDG_RUNTIME_DIR")
        assert impostor.heard() == []
        assert alive(impostor.pid) and alive(real.pid)
        assert request(world, brain.uuid, "status")["state"] == "running"  # the real agent, untouched
        assert world("--uuid", uuid8, "down").rc == 0
        wait_gone(real.pid)
    finally:
        impostor.stop()


def test_a_runtime_directory_below_a_directory_others_may_change_is_refused(hera, scratch):
    shared = scratch / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)  # writable by all and not sticky: anyone may swap what is in it
    one_error_line(hera("agents", env={"HERA_RUNTIME_DIR": str(shared / "run")}), str(shared), "other users")
    assert not (shared / "run").exists()


def test_the_connection_file_is_never_written_through_a_planted_link(world):
    brain = build(world)
    decoy = world.workdir / "decoy.txt"
    decoy.write_text("not a key\n")
    decoy.chmod(0o644)
    directory = runtime_dir(world)
    directory.mkdir(mode=0o700, parents=True)
    (directory / f"{brain.uuid}.connection.json").symlink_to(decoy)

    up = up_daemon(world, "t.json")

    assert decoy.read_text() == "not a key\n"
    info = os.lstat(up.connection)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.getuid()
    assert json.loads(up.connection.read_text())["port"] == up.port
    assert world("--uuid", brain.uuid[:8], "down").rc == 0
    wait_gone(up.pid)


def test_a_socket_served_by_another_users_process_is_never_talked_to(hera, scratch, nobody_python):
    with_private_system_dir(hera)
    make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    hera("install", "brain.json", check=True)
    uuid = read_head(hera.workdir / "brain.json")["uuid"]
    directory = Path(hera.env["XDG_RUNTIME_DIR"]) / "hera"
    stand_in = FakeAgent("brisk-otter", uuid)  # root's own process, titled as the agent, with its pid-file
    write_pid_file(directory, uuid, stand_in.pid)
    theirs = scratch / "nobody-socket"
    theirs.mkdir(mode=0o777)
    theirs.chmod(0o777)
    impostor = Impostor(nobody_python, scratch, theirs / "s.sock", uuid, "not an agent")
    try:
        os.rename(theirs / "s.sock", directory / f"{uuid}.sock")  # however it got there: nobody serves it

        fed = hera("--uuid", uuid[:8], "signal", "SIGTTIN", input="the owner's secret input\n", timeout=60)
        one_error_line(fed, "another user", NOBODY)
        down = hera("--uuid", uuid[:8], "down", timeout=60)
        one_error_line(down, "another user", NOBODY)
        assert impostor.heard() == []
    finally:
        impostor.stop()
        stand_in.stop()
