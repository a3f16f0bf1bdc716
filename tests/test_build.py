"""``hera --family abraxas --layout example build``, as the product README writes it.

A build makes one new, dead instance file in the working directory, named by
its UUID unless ``-o`` names it, and installs nothing. Every bad input is one
line on stderr and a non-zero exit, and leaves nothing behind: no file, no
half-written temporary.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hera.instance import FORMAT_VERSION
from herakit import Result, World, leftovers, one_error_line

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
CALLSIGN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
BUILT = re.compile(r"^built (?P<callsign>\S+) (?P<uuid>\S+) \((?P<family>[^/]+)/(?P<layout>[^)]+)\) -> (?P<path>.+)$")
#: What abraxas (0.2.0) adds to every layout's ``hidden`` section that these tests do not set: the
#: winner-take-all group height and the lag pairs of the hidden sheets' structural synapses.
HIDDEN_EXTRA: dict[str, Any] = {"group_rows": 3, "lags": [2, 8, 2, 7, 2, 6, 2, 8, 2, 7, 2, 6, 2, 3, 2, 4, 2, 5, 2, 3, 2, 4, 2, 5]}


def header(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    assert document["format"] == "hera-instance" and document["format_version"] == FORMAT_VERSION
    return document["header"]


def said(result: Result) -> dict[str, str]:
    """The parts of ``built CALLSIGN UUID (FAMILY/LAYOUT) -> PATH``, the one line a build prints."""
    assert result.rc == 0, str(result)
    assert result.err == "", str(result)
    lines = result.out.splitlines()
    assert len(lines) == 1, str(result)
    match = BUILT.match(lines[0])
    assert match, lines[0]
    return match.groupdict()


def test_build_writes_one_dead_instance_named_by_its_uuid_and_installs_nothing(hera: World) -> None:
    from hera.instance import load

    result = hera("--family", "abraxas", "--layout", "example", "build")

    told = said(result)
    (built,) = hera.files()
    assert built.name == f"{told['uuid']}.json" and Path(told["path"]) == built
    assert UUID.match(told["uuid"]) and CALLSIGN.match(told["callsign"])
    assert (told["family"], told["layout"]) == ("abraxas", "example")

    head = header(built)
    assert head["uuid"] == told["uuid"] and head["callsign"] == told["callsign"]
    assert head["family"] == {"name": "abraxas", "version": "0.2.0"}
    assert head["layout"] == "example"
    assert head["dynamic"] is False and head["iteration"] == 0
    assert "installed" not in head and "last_up" not in head
    assert head["params"]["hidden"] == {"width": 32, "height": 48, "depth": 1} | HIDDEN_EXTRA
    assert 0 <= head["seed"] < 2**63
    assert head["summary"]["neurons"] == 16 * 16 + 32 * 48 + 16 * 16

    brain = load(built)
    assert brain.arrays and all(name.startswith("weights.") for name in brain.arrays)  # no dynamic state
    assert all(not array.any() for array in brain.arrays.values())  # every weight is zero
    assert sum(array.size for array in brain.arrays.values()) == head["summary"]["synapses"]
    assert built.stat().st_size < 64 * 1024  # zero weights cost nothing in the file

    assert [p for p in hera.home.rglob("*") if p.is_file()] == []  # not installed, no cache written
    assert leftovers(hera.workdir) == []


def test_build_honours_output_callsign_and_seed_and_never_reuses_a_uuid(hera: World) -> None:
    (hera.workdir / "brains").mkdir()

    told = said(hera("--family", "abraxas", "--callsign", "brisk-otter", "--seed", "42", "build", "-o", "brains/b.json"))

    target = hera.workdir / "brains" / "b.json"
    assert Path(told["path"]) == target and hera.files() == []
    head = header(target)
    assert (head["uuid"], head["callsign"], head["seed"]) == (told["uuid"], "brisk-otter", 42)

    # the same request again is a new agent: same seed and parameters, another uuid and file
    again = header(Path(said(hera("--family", "abraxas", "--seed", "42", "build"))["path"]))
    assert again["uuid"] != head["uuid"] and (again["seed"], again["params"]) == (42, head["params"])


@pytest.mark.parametrize(
    "args",
    [
        ["--family", "abraxas", "--layout", "small", "--seed", "7", "--callsign", "calm-lynx", "build", "-o", "b.json"],
        ["build", "--family", "abraxas", "--layout", "small", "--seed", "7", "--callsign", "calm-lynx", "-o", "b.json"],
        ["--family", "abraxas", "--seed", "7", "build", "--layout", "small", "-o", "b.json", "--callsign", "calm-lynx"],
    ],
    ids=["before", "after", "mixed"],
)
def test_global_options_work_before_and_after_the_subcommand(hera: World, args: list[str]) -> None:
    said(hera(*args))

    head = header(hera.workdir / "b.json")
    assert (head["layout"], head["seed"], head["callsign"]) == ("small", 7, "calm-lynx")
    assert head["params"]["hidden"]["width"] == 64


def test_set_overrides_layout_parameters_before_and_after_the_subcommand(hera: World) -> None:
    said(hera("--family", "abraxas", "--set", "hidden.width=48", "build", "--set", "hidden.depth=2", "-o", "b.json"))

    head = header(hera.workdir / "b.json")
    assert head["params"]["hidden"] == {"width": 48, "height": 48, "depth": 2} | HIDDEN_EXTRA
    assert head["summary"]["neurons"] == 16 * 16 + 2 * 48 * 48 + 16 * 16


@pytest.mark.parametrize(
    "args, fragments, rc",
    [
        (["--family", "abraxs", "build"], ["no family named 'abraxs'", "did you mean 'abraxas'?"], 3),
        (["--family", "abraxas", "--layout", "exmaple", "build"], ["no layout 'exmaple'", "did you mean 'example'?"], 3),
        (["build"], ["which family?", "--family", "abraxas"], 2),
        (["--family", "abraxas", "--set", "hidden.widht=40", "build"], ["'hidden.widht'", "did you mean 'width'?"], 1),
        (["--family", "abraxas", "--set", "hidden.width=wide", "build"], ["'hidden.width'", "integer"], 1),
        (["--family", "abraxas", "--set", "hidden", "build"], ["--set 'hidden'", "KEY=VALUE"], 1),
        (["--family", "abraxas", "--seed", "-1", "build"], ["seed", "greater than or equal to 0"], 1),
    ],
    ids=["family-typo", "layout-typo", "no-family", "param-typo", "param-type", "set-form", "seed"],
)
def test_a_bad_build_request_is_one_line_and_writes_nothing(hera: World, args: list[str], fragments: list[str], rc: int) -> None:
    one_error_line(hera(*args), *fragments, rc=rc)
    assert hera.files() == []


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["--family", "abraxas", "biuld"], ["invalid choice: 'biuld'", "hera --help"]),
        (["--family", "abraxas", "build", "--frce"], ["unrecognized arguments: --frce"]),
        (["--family", "abraxas", "--seed", "seven", "build"], ["--seed", "'seven'"]),
    ],
    ids=["subcommand", "option", "int"],
)
def test_a_mistyped_command_line_is_one_line_with_exit_code_2(hera: World, args: list[str], fragments: list[str]) -> None:
    one_error_line(hera(*args), *fragments, rc=2)
    assert hera.files() == []


def test_build_never_overwrites_without_force(hera: World) -> None:
    said(hera("--family", "abraxas", "--callsign", "first-one", "build", "-o", "brain.json"))
    target = hera.workdir / "brain.json"
    before = target.read_bytes()

    refused = hera("--family", "abraxas", "--callsign", "second-one", "build", "-o", "brain.json")

    one_error_line(refused, str(target), "already exists", "--force", rc=4)
    assert target.read_bytes() == before and refused.out == ""
    assert hera.files() == [target] and leftovers(hera.workdir) == []

    told = said(hera("--family", "abraxas", "--callsign", "second-one", "build", "-o", "brain.json", "--force"))
    assert header(target)["callsign"] == "second-one" and header(target)["uuid"] == told["uuid"]
    assert hera.files() == [target] and leftovers(hera.workdir) == []


@pytest.mark.parametrize("parent, what", [("missing", "does not exist"), ("plain.txt", "is not a directory")])
def test_build_into_a_directory_that_is_not_there_is_one_line(hera: World, parent: str, what: str) -> None:
    (hera.workdir / "plain.txt").write_text("not a directory\n")

    one_error_line(hera("--family", "abraxas", "build", "-o", f"{parent}/brain.json"), f"{parent}/brain.json", what, rc=1)
    assert hera.files() == [hera.workdir / "plain.txt"] and not (hera.workdir / "missing").exists()


@pytest.fixture
def unwritable(hera: World) -> Iterator[Path]:
    """A directory in the working directory that this user cannot create files in.

    Permissions bind an ordinary user (mode 0500). Root ignores them, so for
    root the directory is made immutable (``chattr +i``), which binds root
    too; where neither works the test is skipped.
    """
    directory = hera.workdir / "locked"
    directory.mkdir()
    if os.geteuid() != 0:
        directory.chmod(0o500)
        try:
            yield directory
        finally:
            directory.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(directory)], capture_output=True).returncode != 0:
        pytest.skip("running as root, and this filesystem cannot make a directory immutable")
    try:
        yield directory
    finally:
        subprocess.run([chattr, "-i", str(directory)], check=True)


def test_build_into_an_unwritable_directory_is_one_line_and_leaves_nothing(hera: World, unwritable: Path) -> None:
    refused = hera("--family", "abraxas", "build", "-o", "locked/brain.json")

    one_error_line(refused, "cannot write", "locked/brain.json", rc=1)
    assert re.search(r"Permission denied|Operation not permitted", refused.err), refused.err
    assert list(unwritable.iterdir()) == [] and hera.files() == []


def _file_size_limit(limit: int) -> Any:
    """For ``preexec_fn``: files this process writes may not grow past ``limit`` bytes.

    Writing past it fails with EFBIG, exactly as on a full disk (and works as
    root, unlike permissions). SIGXFSZ is ignored so the write fails instead
    of killing hera.
    """

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize(
    "stop",
    [
        pytest.param("half-way", id="half-way"),
        pytest.param("one-byte-short", id="one-byte-short"),
    ],
)
def test_a_build_that_cannot_finish_writing_leaves_no_file_and_no_temporary(hera: World, stop: str) -> None:
    build = ("--family", "abraxas", "--seed", "1", "--callsign", "size-probe", "build")
    if stop == "half-way":
        limit = 1024  # the header alone is larger
    else:
        said(hera(*build, "-o", "probe.json"))
        limit = (hera.workdir / "probe.json").stat().st_size - 1  # the same request writes as many bytes
        (hera.workdir / "probe.json").unlink()

    failed = hera(*build, "-o", "brain.json", preexec_fn=_file_size_limit(limit))

    one_error_line(failed, "cannot write", "brain.json", "File too large", rc=1)
    assert hera.files() == [] and leftovers(hera.workdir) == []
