"""Root is never steered by another user's links into handing over, or writing into, a place of theirs.

Two holes, each tried as it would really be made, with real users:

* ``install --user U FILE`` as root used to write into U's cache as root and
  then chown what it had made to U, by path. U can swap a directory of their
  cache for a symbolic link at any instant of the install (strace widens the
  window, as an attacker's load would), and root then chowned whatever the
  link pointed at, root's own files included. Now the cache write is done by
  a child that has become U completely, so root chowns nothing and follows
  no path of U's; root reads and verifies the file itself (U need not be able
  to read it).
* ``uninstall -o DIR/FILE`` and ``build -o DIR/FILE`` followed a directory
  link another user planted in a shared directory (``/tmp``), so root's only
  copy of an agent landed in that user's directory. Now the output's parents
  are resolved as ``copy -o`` resolves them: a link is followed only if it is
  the caller's or root's, and the file is linked or written relative to the
  directory so reached, never over anything.

Skipped unless the tests run as root.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cachekit import cached, make_instance, read_head, throwaway_user as make_throwaway_user
from herakit import World, leftovers, one_error_line

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")

#: Attempts of the install race; each one is made deterministic by strace, so a few suffice.
RACE_TRIALS = 3
#: How long strace holds each mkdir(2) of the install: the window in which the user swaps in a link.
MKDIR_DELAY_US = 1_500_000


@pytest.fixture
def root(scratch: Path) -> Iterator[World]:
    with World(scratch / f"root-{secrets.token_hex(3)}") as world:
        yield world


@pytest.fixture(scope="module")
def user() -> Iterator[pwd.struct_passwd]:
    """A real user with a home (useradd -m), removed afterwards."""
    yield from make_throwaway_user()


def as_user(entry: pwd.struct_passwd, *command: str, cwd: Path | str = "/") -> None:
    """Run a shell command as that user (the attacker's own moves)."""
    subprocess.run(
        list(command), user=entry.pw_uid, group=entry.pw_gid, extra_groups=[], cwd=cwd, check=True, capture_output=True
    )


def owners(top: Path) -> dict[str, int]:
    """The owner of ``top`` and of everything below it, never following a link."""
    found = {str(top): os.lstat(top).st_uid}
    for path in top.rglob("*"):
        found[str(path)] = os.lstat(path).st_uid
    return found


# -- F1: install --user, with the user's cache swapped for a link mid-install ---------------------


@pytest.fixture
def roots_own(user: pwd.struct_passwd) -> Iterator[Path]:
    """A directory of root's the user can reach, shaped like a cache (``agents/sys.json``): the target of the swap."""
    top = Path(f"/tmp/hera-adv-sys-{secrets.token_hex(3)}")
    (top / "agents").mkdir(parents=True, mode=0o755)
    for directory in (top, top / "agents"):
        directory.chmod(0o755)
    (top / "agents" / "sys.json").write_text("root's\n")
    yield top
    shutil.rmtree(top, ignore_errors=True)


def _install_under_strace(root: World, user: pwd.struct_passwd, file: str, trace: Path) -> subprocess.Popen[str]:
    """``hera install --user`` as root, every mkdir(2) held for a while (the install's window, widened)."""
    command = [
        "strace", "-f", "-qq", "-o", str(trace), "-e", "trace=mkdir", "-e", "signal=none",
        "-e", f"inject=mkdir:delay_enter={MKDIR_DELAY_US}",
        *root.command("install", "--user", user.pw_name, file),
    ]  # fmt: skip
    return subprocess.Popen(command, env=root.env, cwd=root.workdir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to hold the install in its window")
def test_install_for_a_user_who_swaps_their_cache_for_a_link_mid_install_hands_them_nothing(
    root: World, user: pwd.struct_passwd, roots_own: Path
) -> None:
    share = Path(user.pw_dir) / ".local" / "share"
    as_user(user, "mkdir", "-p", str(share / "hera" / "agents"))
    before = owners(roots_own)
    swapped = [0]
    try:
        _race(root, user, roots_own, share, before, swapped)
    finally:
        if (share / "hera").is_symlink():  # the user puts their real cache back
            as_user(user, "sh", "-c", "rm hera && mv hera.real hera", cwd=share)
    assert swapped[0] == RACE_TRIALS, "the install never reached the user's cache: the attack was not made"


def _race(root: World, user: pwd.struct_passwd, roots_own: Path, share: Path, before: dict[str, int], swapped: list[int]) -> None:
    """RACE_TRIALS installs, each with the user's cache swapped for a link to ``roots_own`` while strace holds a mkdir."""
    for trial in range(RACE_TRIALS):
        if (share / "hera").is_symlink():  # the user puts their real cache back for the next try
            as_user(user, "sh", "-c", "rm hera && mv hera.real hera", cwd=share)
        make_instance(root.workdir, f"f{trial}.json")
        trace = root.root / f"trace-{trial}"
        process = _install_under_strace(root, user, f"f{trial}.json", trace)
        deadline = time.monotonic() + 120
        while process.poll() is None and time.monotonic() < deadline:
            if trace.exists() and f'mkdir("{share}/hera' in trace.read_text(errors="replace"):
                as_user(user, "sh", "-c", f"mv hera hera.real && ln -s {roots_own} hera", cwd=share)
                swapped[0] += 1
                break
            time.sleep(0.02)
        out, err = process.communicate(timeout=120)
        # root's directory and everything in it are still root's, and root wrote nothing there
        assert owners(roots_own) == before, f"trial {trial}: {err}"
        assert sorted(p.name for p in (roots_own / "agents").iterdir()) == ["sys.json"], f"trial {trial}: {err}"
        lines = [line for line in err.splitlines() if not line.startswith("strace")]
        assert process.returncode == 0 or (len(lines) == 1 and lines[0].startswith("hera: ")), (out, err)
        assert "Traceback" not in err


def test_install_for_a_user_reads_a_file_only_root_may_read_and_leaves_nothing_of_roots(
    root: World, user: pwd.struct_passwd
) -> None:
    """Root reads and verifies the file; the user's own process writes it: all of it is theirs, none of it root's."""
    private = root.root / "private"
    private.mkdir(mode=0o700)
    source = make_instance(private, "secret.json", callsign="quiet-heron")
    source.chmod(0o600)
    uuid = read_head(source)["uuid"]
    done = root("install", "--user", user.pw_name, str(source))
    assert done.rc == 0, done
    cache = Path(user.pw_dir) / ".local" / "share" / "hera" / "agents"
    assert done.out.startswith(f"installed quiet-heron {uuid} -> {cache / f'{uuid}.json'}")
    assert all(uid == user.pw_uid for uid in owners(Path(user.pw_dir) / ".local").values())
    assert stat.S_IMODE(os.stat(cache / f"{uuid}.json").st_mode) == 0o600
    assert read_head(cache / f"{uuid}.json")["installed"]["owner"] == user.pw_name
    # an installed UUID is refused in one line, as for one's own cache
    one_error_line(root("install", "--user", user.pw_name, str(source)), "already installed", rc=4)
    assert not leftovers(cache)


# -- F3: uninstall -o / build -o through another user's link in a shared directory ----------------


@pytest.fixture
def shared() -> Iterator[tuple[Path, Path]]:
    """A 1777 directory holding ``shared``, a link that nobody planted to a directory of nobody's."""
    nobody = pwd.getpwnam("nobody")
    top = Path(f"/tmp/hera-adv-{secrets.token_hex(3)}")
    sticky, theirs = top / "sh", top / "nb"
    top.mkdir(mode=0o755)
    top.chmod(0o755)
    sticky.mkdir()
    sticky.chmod(0o1777)
    theirs.mkdir()
    os.chown(theirs, nobody.pw_uid, nobody.pw_gid)
    theirs.chmod(0o777)  # so root's refused write, had it happened, would have landed
    as_user(nobody, "ln", "-s", str(theirs), "shared", cwd=sticky)
    as_user(nobody, "ln", "-s", str(theirs / "planted.json"), "planted.json", cwd=sticky)
    yield sticky, theirs
    shutil.rmtree(top, ignore_errors=True)


def test_uninstall_through_another_users_link_is_refused_and_the_agent_stays(root: World, shared: tuple[Path, Path]) -> None:
    sticky, theirs = shared
    uuid = read_head(make_instance(root.workdir, "mine.json", callsign="still-here"))["uuid"]
    root("install", "mine.json", check=True)

    refused = root("--uuid", uuid[:8], "uninstall", "-o", "shared/x.json", cwd=sticky)
    one_error_line(refused, "shared", "symbolic link", "another user", rc=1)
    refused = root("--uuid", uuid[:8], "uninstall", "-o", str(sticky / "shared" / "x.json"))
    one_error_line(refused, "shared", "symbolic link", "another user", rc=1)
    # a link at the name itself is never written through, dangling or not
    one_error_line(root("--uuid", uuid[:8], "uninstall", "-o", "planted.json", cwd=sticky), "already exists", rc=4)
    assert list(theirs.iterdir()) == []
    assert [p.name for p in cached(root)] == [f"{uuid}.json"]

    # a link of root's own is followed, and the agent moves out whole
    mine = root.root / "mine"
    mine.mkdir()
    (root.workdir / "own").symlink_to("../mine")
    done = root("--uuid", uuid[:8], "uninstall", "-o", "own/out.json", check=True)
    assert done.out == f"uninstalled still-here {uuid} -> {root.workdir / 'own' / 'out.json'}\n"
    assert read_head(mine / "out.json")["uuid"] == uuid and cached(root) == []
    assert not leftovers(root.workdir, mine, sticky)


def test_build_through_another_users_link_is_refused(root: World, shared: tuple[Path, Path]) -> None:
    sticky, theirs = shared
    one_error_line(root("--family", "abraxas", "build", "-o", "shared/b.json", cwd=sticky), "shared", "symbolic link", rc=1)
    one_error_line(root("--family", "abraxas", "build", "-o", "planted.json", cwd=sticky), "planted.json", "already exists", rc=4)
    assert list(theirs.iterdir()) == []
    # --force replaces the link itself, never writes through it
    root("--family", "abraxas", "build", "-o", "planted.json", "--force", cwd=sticky, check=True)
    assert list(theirs.iterdir()) == [] and stat.S_ISREG(os.lstat(sticky / "planted.json").st_mode)
    assert not leftovers(sticky)
    # an ordinary name in the shared directory still works (a fresh file, root's, 0644 as builds are)
    done = root("--family", "abraxas", "build", "-o", "fine.json", cwd=sticky, check=True)
    assert done.out.rstrip().endswith(str(sticky / "fine.json"))
    assert os.lstat(sticky / "fine.json").st_uid == 0
