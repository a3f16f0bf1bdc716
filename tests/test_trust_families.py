"""Family folders another user planted are never imported, by any command, even as root.

hera imports family folders found in the working directory (``git clone`` a
family next to your files). In a shared directory another local user can put
a folder there; importing it would run their code as whoever runs ``hera``.
These tests plant such folders as a real second user (``nobody``, through
``sh``, as that user would) in a sticky world-writable directory, run hera as
root there, and check that the planted module never ran: it would create a
marker file the moment it is imported. Those tests are skipped unless the
tests run as root.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from agent_helpers import TICK, build, kernel_cache, reap_agents, up_daemon
from cachekit import EVIL_MODULE, PYPROJECT, as_user, make_instance
from herakit import Result, World, one_error_line

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")

OTHER = "nobody"


def plant(user: str, parent: Path, folder: str, marker: Path, *, name: str = "evil") -> Path:
    """``user`` makes ``parent/folder``: a family folder declaring ``name`` whose import leaves ``marker``."""
    as_user(user, parent, f"mkdir -p {folder}/evil_family")
    as_user(user, parent, f"cat > {folder}/pyproject.toml", PYPROJECT.format(name=name))
    as_user(user, parent, f"cat > {folder}/evil_family/__init__.py", EVIL_MODULE.format(marker=str(marker)))
    return parent / folder


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """Where planted code would leave its mark (root's own directory: only code run as root can)."""
    return tmp_path / "planted-code-ran"


def untrusted_rows(result: Result) -> list[dict]:
    return [row for row in json.loads(result.out) if row.get("trusted") is False]


def trust_hint(result: Result) -> str:
    """``families`` lists untrusted folders and says, in one line on stderr, how to trust one."""
    assert "Traceback" not in result.err, str(result)
    (line,) = result.err.splitlines()
    assert line.startswith("hera: ") and "trusted_family_dirs" in line and "~/.herarc" in line, line
    return line


# -- every command that finds families --------------------------------------------------------


@needs_root
@pytest.mark.parametrize("command", ["families", "layouts", "build-installed", "build-planted", "grow"])
def test_a_family_folder_planted_by_another_user_is_never_imported(
    hera: World, shared: Path, marker: Path, command: str
) -> None:
    # The planted folder claims both a name of its own and abraxas, an installed family.
    as_user(OTHER, shared, "mkdir -p their-family/evil_family")
    as_user(OTHER, shared, "cat > their-family/pyproject.toml", PYPROJECT.format(name="evil") + 'abraxas = "evil_family:Evil"\n')
    as_user(OTHER, shared, "cat > their-family/evil_family/__init__.py", EVIL_MODULE.format(marker=str(marker)))

    if command == "families":
        result = hera("families", "--json", cwd=shared)
        assert result.rc == 0, str(result)
        assert {row["name"] for row in untrusted_rows(result)} == {"evil", "abraxas"}
        assert all(str(shared / "their-family") in row["source"] for row in untrusted_rows(result))
        installed = [row for row in json.loads(result.out) if row["name"] == "abraxas" and row.get("trusted") is not False]
        assert installed and installed[0]["source"].startswith("installed"), result.out
        trust_hint(result)
    elif command == "layouts":
        result = hera("--family", "abraxas", "layouts", "--json", cwd=shared)
        assert result.rc == 0 and json.loads(result.out), str(result)
    elif command == "build-installed":
        result = hera("--family", "abraxas", "build", "-o", "mine.json", cwd=shared)
        assert result.rc == 0 and (shared / "mine.json").is_file(), str(result)
    elif command == "build-planted":
        line = one_error_line(hera("--family", "evil", "build", cwd=shared), "evil", str(shared / "their-family"), "not trusted")
        assert "trusted_family_dirs" in line and "~/.herarc" in line
    else:
        make_instance(hera.workdir, "brain.json")
        hera("install", "brain.json", check=True)
        result = hera("grow", "--set", "hidden.width=40", cwd=shared)
        assert result.rc == 0 and "grew" in result.out, str(result)

    assert not marker.exists(), "hera imported a family folder another user planted"


@needs_root
@pytest.mark.parametrize(
    "case",
    [
        "their-folder",
        "their-working-directory",
        "my-folder-their-package-dir",
        "my-folder-in-their-directory",
        "my-symlink-to-their-folder",
        "my-folder-their-symlinked-module",
    ],
)
def test_a_family_folder_is_imported_only_when_no_other_user_can_change_it(
    hera: World, shared: Path, marker: Path, case: str
) -> None:
    workdir = shared
    if case == "their-folder":
        plant(OTHER, shared, "their-family", marker)
    elif case == "their-working-directory":
        # The working directory itself as a family folder: anyone may write to it.
        as_user(OTHER, shared, "mkdir evil_family")
        as_user(OTHER, shared, "cat > pyproject.toml", PYPROJECT.format(name="evil"))
        as_user(OTHER, shared, "cat > evil_family/__init__.py", EVIL_MODULE.format(marker=str(marker)))
    elif case == "my-folder-their-package-dir":
        # root's own folder, but its package directory is open to everyone: nobody fills it.
        folder = shared / "my-family"
        (folder / "evil_family").mkdir(parents=True)
        (folder / "pyproject.toml").write_text(PYPROJECT.format(name="evil"))
        (folder / "evil_family").chmod(0o777)
        as_user(OTHER, folder, "cat > evil_family/__init__.py", EVIL_MODULE.format(marker=str(marker)))
    elif case == "my-folder-in-their-directory":
        # root made the folder, but inside a directory of nobody's: they can swap it at will.
        as_user(OTHER, shared, "mkdir theirs && chmod 755 theirs")
        workdir = shared / "theirs"
        folder = workdir / "my-family"
        (folder / "evil_family").mkdir(parents=True)
        (folder / "pyproject.toml").write_text(PYPROJECT.format(name="evil"))
        (folder / "evil_family" / "__init__.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    elif case == "my-symlink-to-their-folder":
        their = plant(OTHER, shared, "their-family", marker)
        workdir = hera.workdir
        (workdir / "linked-family").symlink_to(their)
    else:
        # root's own folder whose module is a link to a file nobody owns.
        their = plant(OTHER, shared, "their-family", marker)
        workdir = hera.workdir
        folder = workdir / "my-family"
        (folder / "evil_family").mkdir(parents=True)
        (folder / "pyproject.toml").write_text(PYPROJECT.format(name="evil"))
        (folder / "evil_family" / "__init__.py").symlink_to(their / "evil_family" / "__init__.py")

    result = hera("families", "--json", cwd=workdir)

    assert result.rc == 0, str(result)
    assert [row["name"] for row in untrusted_rows(result)] == ["evil"], result.out
    trust_hint(result)
    one_error_line(hera("--family", "evil", "build", cwd=workdir), "not trusted", "trusted_family_dirs")
    assert not marker.exists(), "hera imported a family folder another user can change"


@needs_root
def test_an_agent_started_among_planted_folders_runs_its_owners_family(hera: World, shared: Path, marker: Path) -> None:
    """``up`` and the agent process both look the family up; neither imports the planted one."""
    shutil.copytree(TICK, shared / "tick", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    hera.env["XDG_CACHE_HOME"] = str(kernel_cache())
    # "a-..." sorts before "tick": without the check it would provide the family.
    plant(OTHER, shared, "a-their-tick", marker, name="tick")
    hera.workdir.rmdir()
    hera.workdir.symlink_to(shared)  # build, up and down run in the shared directory
    try:
        brain = build(hera)
        up = up_daemon(hera, str(brain.path))
        assert up.uuid == brain.uuid
        hera("--uuid", brain.uuid, "down", check=True)
    finally:
        reap_agents(hera)
    assert not marker.exists(), "the controller or the agent imported a planted family"


# -- the trust setting ------------------------------------------------------------------------


@needs_root
def test_a_folder_listed_in_trusted_family_dirs_of_herarc_is_used(hera: World, shared: Path, marker: Path) -> None:
    their = plant(OTHER, shared, "their-family", marker)
    hera.herarc.write_text(json.dumps({"trusted_family_dirs": [str(their)]}))

    result = hera("families", "--json", cwd=shared)

    assert result.rc == 0 and not untrusted_rows(result), str(result)
    (row,) = [row for row in json.loads(result.out) if row["name"] == "evil"]
    assert row["source"] == f"folder {their}"
    assert marker.exists()  # trusted on purpose: imported (and, being no real family, reported broken)


@needs_root
@pytest.mark.parametrize("source", ["hera.json", "environment", "relative"])
def test_trusted_family_dirs_is_read_only_from_herarc_and_only_absolute(
    hera: World, shared: Path, marker: Path, source: str
) -> None:
    """./hera.json lives in the very directory an attacker may control, so it cannot grant trust."""
    their = plant(OTHER, shared, "their-family", marker)
    env: dict[str, str] = {}
    if source == "hera.json":
        (shared / "hera.json").write_text(json.dumps({"trusted_family_dirs": [str(their)]}))
        fragments = [str(shared / "hera.json"), "trusted_family_dirs", "~/.herarc"]
    elif source == "environment":
        env["HERA_TRUSTED_FAMILY_DIRS"] = str(their)
        fragments = ["HERA_TRUSTED_FAMILY_DIRS", "~/.herarc"]
    else:
        hera.herarc.write_text(json.dumps({"trusted_family_dirs": ["their-family"]}))
        fragments = [str(hera.herarc), "trusted_family_dirs", "absolute"]

    # families too: settings that cannot be read stop every command with the same line
    for command in (["info"], ["--family", "evil", "build"], ["families", "--json"]):
        one_error_line(hera(*command, env=env, cwd=shared), *fragments)
    assert not marker.exists()


# -- what hera reads before it decides ----------------------------------------------------------


@pytest.mark.parametrize("planted", ["nested-toml", "fifo", "huge"])
def test_a_pyproject_that_is_a_trap_is_skipped_in_one_piece(hera: World, planted: str) -> None:
    """hera reads a folder's pyproject.toml before it knows whether to trust it: that read must be safe."""
    folder = hera.workdir / "trap"
    folder.mkdir()
    pyproject = folder / "pyproject.toml"
    if planted == "nested-toml":  # tomllib recurses: RecursionError
        pyproject.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    elif planted == "fifo":  # reading would wait for a writer for ever
        os.mkfifo(pyproject)
    else:  # declares a family, but is larger than any real pyproject.toml
        with pyproject.open("w") as out:
            out.write(PYPROJECT.format(name="evil"))
            out.write("#" * (2 << 20))

    result = hera("families", "--json", timeout=30)

    assert result.rc == 0 and result.err == "", str(result)
    assert "evil" not in {row["name"] for row in json.loads(result.out)}
