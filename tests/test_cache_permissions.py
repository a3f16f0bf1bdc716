"""Rights: system agents, other users' caches, and the clear errors when rights are missing.

Runs hera as root and as ``nobody`` (and as a throwaway user made with
``useradd -m`` for the one case that needs a real home). Skipped unless the
tests run as root.
"""

from __future__ import annotations

import json
import os
import pwd

import pytest

from cachekit import OtherUser, make_instance, mode, other_user_python, read_head, throwaway_user as make_throwaway_user
from herakit import World, one_error_line

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as other users")


@pytest.fixture(scope="module")
def python_for_others(scratch):
    return other_user_python("nobody", scratch)


@pytest.fixture(scope="module")
def system_dir(scratch):
    """A system directory as an admin leaves it: root's, 0755."""
    path = scratch / "system"
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def root(scratch, system_dir):
    with World(scratch / "root") as hera:
        hera.env["HERA_SYSTEM_DIR"] = str(system_dir)
        yield hera


@pytest.fixture(scope="module")
def nobody(scratch, system_dir, python_for_others):
    with OtherUser(scratch / "nobody", "nobody", python=python_for_others) as hera:
        hera.env["HERA_SYSTEM_DIR"] = str(system_dir)
        yield hera


@pytest.fixture(scope="module")
def throwaway_user():
    """A real user with a home, removed afterwards."""
    yield from make_throwaway_user()


@pytest.fixture(scope="module")
def installed_for_them(root, throwaway_user):
    """root ran 'hera install --user NAME FILE'; the result and the agent's header."""
    source = make_instance(root.workdir, "for-them.json", callsign="brisk-otter")
    result = root("install", "--user", throwaway_user.pw_name, "for-them.json")
    return result, read_head(source)


def test_root_installs_into_another_users_cache_and_hands_it_over(installed_for_them, throwaway_user):
    result, header = installed_for_them
    assert result.rc == 0, result
    home = throwaway_user.pw_dir
    cache = os.path.join(home, ".local", "share", "hera", "agents")
    cached = os.path.join(cache, f"{header['uuid']}.json")
    assert result.out.startswith(f"installed brisk-otter {header['uuid']} -> {cached}")
    installation = read_head(cached)["installed"]
    assert (installation["owner"], installation["scope"]) == (throwaway_user.pw_name, "user")
    assert mode(cached) == 0o600 and mode(cache) == 0o700
    # everything root made in their home is theirs, down to the lock file
    for path in (".local", ".local/share", ".local/share/hera", ".local/share/hera/agents",
                 ".local/share/hera/agents/.lock", f".local/share/hera/agents/{header['uuid']}.json"):
        assert os.lstat(os.path.join(home, path)).st_uid == throwaway_user.pw_uid, path


def test_the_user_can_then_use_and_destroy_the_agent_root_installed(installed_for_them, throwaway_user, scratch, python_for_others):
    _, header = installed_for_them
    with OtherUser(scratch / "them", throwaway_user.pw_name, python=python_for_others) as them:
        # their real home, where root put the agent
        them.env |= {"HOME": throwaway_user.pw_dir, "XDG_DATA_HOME": os.path.join(throwaway_user.pw_dir, ".local", "share")}
        listed = json.loads(them("agents", "--json").out)
        assert [row["uuid"] for row in listed] == [header["uuid"]]
        result = them("--callsign", "brisk-otter", "destroy")
        assert result.rc == 0, str(result)


def test_installing_for_a_user_without_a_home_is_refused(root):
    make_instance(root.workdir, "homeless.json")
    home = pwd.getpwnam("nobody").pw_dir
    if os.path.exists(home):
        pytest.skip(f"nobody has a home here ({home})")
    one_error_line(root("install", "--user", "nobody", "homeless.json"), f"nobody's home {home} does not exist", rc=1)
    assert not os.path.exists(home)


def test_installing_for_an_unknown_user_is_refused(root):
    make_instance(root.workdir, "lost.json")
    one_error_line(root("install", "--user", "no-such-user-here", "lost.json"), "no user named 'no-such-user-here'", rc=1)


def test_installing_into_another_users_cache_needs_root(nobody):
    make_instance(nobody.workdir, "mine.json")
    refused = nobody("install", "--user", "root", "mine.json")
    one_error_line(refused, "installing into root's cache needs root", "sudo", rc=1)


def test_installing_a_system_agent_needs_write_access(nobody, root, system_dir):
    uuid = read_head(make_instance(nobody.workdir, "sys.json"))["uuid"]
    refused = nobody("install", "--system", "sys.json")
    one_error_line(refused, f"installing a system agent needs write access to {system_dir}", "root", rc=1)
    assert not (system_dir / f"{uuid}.json").exists()

    # root may; the agent is then found by root's lookups, in the system cache
    uuid = read_head(make_instance(root.workdir, "sys.json", callsign="solar-swan"))["uuid"]
    done = root("install", "--system", "sys.json")
    assert done.rc == 0, done
    cached = system_dir / f"{uuid}.json"
    assert read_head(cached)["installed"]["scope"] == "system" and mode(cached) == 0o600
    assert json.loads(root("--callsign", "solar-swan", "inspect", "--json").out)["location"] == "system cache"


def test_changing_a_system_agent_needs_write_access(nobody, root, system_dir):
    uuid = read_head(make_instance(root.workdir, "sys2.json", callsign="steady-yak"))["uuid"]
    assert root("install", "--system", "sys2.json").rc == 0

    for verb in ("destroy", "uninstall"):
        refused = nobody("--uuid", uuid[:8], verb)
        one_error_line(refused, f"changing system agents needs write access to {system_dir}", "root", rc=1)
    assert (system_dir / f"{uuid}.json").exists()
    assert not (nobody.workdir / f"{uuid}.json").exists()
    assert root("--uuid", uuid, "destroy").rc == 0


def test_listing_another_users_agents_needs_the_rights_and_says_so(nobody, installed_for_them, throwaway_user):
    name = throwaway_user.pw_name
    one_error_line(nobody("agents", "--user", name), f"cannot read {name}'s agents", "permission denied", rc=1)
    one_error_line(nobody("agents", "--user", "no-such-user-here"), "no user named", rc=1)
    root_home = pwd.getpwnam("root").pw_dir
    if not os.stat(root_home).st_mode & 0o001:  # a closed /root, as usual
        one_error_line(nobody("agents", "--user", "root"), "cannot read root's agents", "permission denied", rc=1)


def test_agents_all_lists_what_it_can_and_names_what_it_could_not(nobody, root, installed_for_them, throwaway_user):
    make_instance(nobody.workdir, "own.json", callsign="quiet-quail")
    assert nobody("install", "own.json").rc == 0
    make_instance(root.workdir, "sys3.json", callsign="lucid-tern")
    assert root("install", "--system", "sys3.json").rc == 0

    result = nobody("agents", "--all", "--json")

    assert result.rc == 0, result
    rows = json.loads(result.out)
    assert ("nobody", "quiet-quail", "built") in {(row["owner"], row["callsign"], row["state"]) for row in rows}
    # the system directory is open but root's files in it are not: listed, and said so
    system_rows = [row for row in rows if row["owner"] == "system"]
    assert system_rows and all(row["state"] == "unreadable" and "permission denied" in row["error"] for row in system_rows)
    (note,) = result.err.strip().splitlines()
    assert note.startswith("hera: could not read the agents of ") and throwaway_user.pw_name in note

    everything = root("agents", "--all", "--json")
    assert everything.rc == 0 and "could not read" not in everything.err, everything
    assert ("system", "lucid-tern") in {(row["owner"], row["callsign"]) for row in json.loads(everything.out)}
