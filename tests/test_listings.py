"""``hera families``, ``hera layouts`` and ``hera devices``: what a user can build, and where.

Each prints an aligned table for people and, with ``--json``, a list of
objects for scripts. Families are found installed (abraxas, by its entry
point) and as folders cloned into the working directory; a broken family is
listed with its error and hides none of the others.

``hera agents`` lists installed agents. It never asks an up agent anything:
it reads what each publishes in its runtime directory (state, iteration,
rate, mode, holder, port), so an agent deep in a long batch costs it nothing.
Stand-ins (a titled process, a pid-file, a status file, a listening socket
that records whether anyone knocked) pin down what is read and that nothing
is asked; real tick agents tie the stand-ins to what an agent writes.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_helpers import build, reap_agents, request, tick_world, up_daemon, wait_for
from cachekit import (
    FakeAgent,
    make_instance,
    read_head,
    runtime_of,
    throwaway_user,
    with_private_system_dir,
    write_pid_file,
)
from hera.cache.paths import RuntimeFiles
from hera.manager.files import LiveStatus
from herakit import Result, World, one_error_line

# A complete small family, as a third party would write it and a user would `git clone` it.
TINY_MODULE = """\
from hera.family import Built, Family, Params, ResourceEstimate


class TinyParams(Params):
    size: int = 8


class Tiny(Family):
    name = "tiny"
    version = "0.0.1"
    description = "a family cloned into the working directory"
    params_model = TinyParams
    layouts = {"example": {}, "big": {"size": 64}}

    def build(self, params, seed):
        import numpy as np

        return Built(arrays={"weights.w": np.zeros(params.size, np.float32)}, summary={"neurons": params.size})

    def estimate(self, params):
        n = params.size
        return ResourceEstimate(neurons=n, synapses=n, device_bytes=4 * n, host_bytes=4 * n, file_bytes=4 * n)
"""


def family_folder(parent: Path, folder: str, name: str, target: str, code: str, *, src: bool = False) -> Path:
    """A family's repository as cloned: a ``pyproject.toml`` declaring entry point ``name = target``, and its package."""
    root = parent / folder
    package = (root / "src" if src else root) / target.partition(":")[0]
    package.mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "hera-{name}"\nversion = "0.1.0"\ndependencies = ["hera"]\n\n'
        f'[project.entry-points."hera.families"]\n{name} = "{target}"\n'
    )
    (package / "__init__.py").write_text(textwrap.dedent(code))
    return root


def as_json(result: Result) -> Any:
    assert result.rc == 0 and result.err == "", str(result)
    return json.loads(result.out)


def table(result: Result) -> list[list[str]]:
    """A listing's rows split into cells (cells here hold no double spaces)."""
    assert result.rc == 0 and result.err == "", str(result)
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in result.out.splitlines()]


def test_help_names_every_listing_and_the_build_example(hera: World) -> None:
    shown = hera("--help")
    assert shown.rc == 0 and shown.err == ""
    for word in ("build", "families", "layouts", "devices", "hera --family abraxas --layout example build"):
        assert word in shown.out

    shown = hera("layouts", "--help")
    assert shown.rc == 0 and "--json" in shown.out and "--family NAME" in shown.out  # global options, after it too


def test_families_lists_abraxas_as_installed_with_its_layouts(hera: World) -> None:
    rows = table(hera("families"))
    assert rows[0] == ["NAME", "VERSION", "SOURCE", "LAYOUTS"]
    (abraxas,) = [row for row in rows if row[0] == "abraxas"]
    assert abraxas[1:3] == ["0.2.0", "installed (hera-abraxas)"] and abraxas[3].startswith("example, ")

    (abraxas,) = [row for row in as_json(hera("families", "--json")) if row["name"] == "abraxas"]
    assert abraxas["version"] == "0.2.0" and abraxas["source"] == "installed (hera-abraxas)"
    assert abraxas["layouts"].split(", ")[0] == "example" and abraxas["error"] is None
    assert abraxas["description"]


def test_layouts_lists_every_layout_with_estimates_that_a_build_confirms(hera: World) -> None:
    rows = table(hera("layouts"))
    assert rows[0][:7] == ["FAMILY", "LAYOUT", "NEURONS", "SYNAPSES", "DEVICE MEM", "HOST MEM", "FILE"]
    assert rows[0][7].startswith("FITS ")
    assert [row[1] for row in rows[1:] if row[0] == "abraxas"][:2] == ["example", "small"]

    listed = as_json(hera("layouts", "--device", "cpu", "--json"))
    assert {row["device"] for row in listed} == {"cpu"}
    example = next(row for row in listed if (row["family"], row["layout"]) == ("abraxas", "example"))
    assert example["fits"] is True  # the example layout is light enough for any CPU
    assert all(row["fits"] in (True, False, None) and row["device_bytes"] > 0 for row in listed)

    built = hera("--family", "abraxas", "build", "-o", "b.json", check=True)
    summary = json.loads((hera.workdir / "b.json").read_text())["header"]["summary"]
    assert (example["neurons"], example["synapses"]) == (summary["neurons"], summary["synapses"]), built


def test_layouts_of_an_unknown_family_suggests_the_nearest(hera: World) -> None:
    one_error_line(hera("--family", "abraxs", "layouts"), "no family named 'abraxs'", "did you mean 'abraxas'?", rc=3)


def test_devices_lists_the_cpu_as_usable(hera: World) -> None:
    rows = table(hera("devices"))
    assert rows[0][:2] == ["ID", "NAME"] and "USABLE" in rows[0]
    assert any(row[0] == "cpu" for row in rows[1:])

    (cpu,) = [row for row in as_json(hera("devices", "--json")) if row["id"] == "cpu"]
    assert cpu["kind"] == "cpu" and cpu["usable"] is True and "cpu" in cpu["backends"]
    assert cpu["memory_bytes"] > 0 and cpu["cores"] >= 1


def test_a_family_folder_cloned_into_the_working_directory_is_listed_and_builds(hera: World) -> None:
    clone = family_folder(hera.workdir, "hera-tiny", "tiny", "tiny_family:Tiny", TINY_MODULE, src=True)

    families = {row["name"]: row for row in as_json(hera("families", "--json"))}
    assert families["tiny"]["source"] == f"folder {clone}" and families["tiny"]["error"] is None
    assert families["tiny"]["layouts"] == "example, big" and families["abraxas"]["error"] is None

    hera("--family", "tiny", "--layout", "big", "build", "-o", "t.json", check=True)
    head = json.loads((hera.workdir / "t.json").read_text())["header"]
    assert head["family"] == {"name": "tiny", "version": "0.0.1"} and head["params"] == {"size": 64}

    layouts = as_json(hera("--family", "tiny", "layouts", "--json"))
    assert [(row["family"], row["layout"], row["neurons"]) for row in layouts] == [("tiny", "example", 8), ("tiny", "big", 64)]


def test_a_clone_of_an_installed_family_wins_over_the_installed_copy(hera: World) -> None:
    # the same family name and module name as the installed abraxas, as a `git clone` of it has
    code = TINY_MODULE.replace('name = "tiny"', 'name = "abraxas"').replace('"0.0.1"', '"0.2.0.dev0"')
    clone = family_folder(hera.workdir, "abraxas-clone", "abraxas", "abraxas:Tiny", code)

    families = {row["name"]: row for row in as_json(hera("families", "--json"))}
    assert families["abraxas"]["source"] == f"folder {clone}"
    assert families["abraxas"]["version"] == "0.2.0.dev0" and families["abraxas"]["error"] is None

    hera("--family", "abraxas", "build", "-o", "b.json", check=True)
    head = json.loads((hera.workdir / "b.json").read_text())["header"]
    assert head["family"] == {"name": "abraxas", "version": "0.2.0.dev0"} and head["params"] == {"size": 8}


BROKEN = {
    # a dependency the user has not installed
    "missing": "import hera_family_dependency_that_is_not_installed\n",
    # a family without the example layout every family must have
    "exampleless": """\
        import hera.family

        class Family(hera.family.Family):
            name = "exampleless"
            version = "1"
            params_model = hera.family.Params
            layouts = {"huge": {}}
            def build(self, params, seed): ...
            def estimate(self, params): ...
        """,
    # an import-time failure whose message runs over several lines
    "multiline": 'raise RuntimeError("cannot start:\\n  libfoo.so.1 not found\\n  install libfoo")\n',
}


def test_a_broken_family_folder_is_listed_with_its_error_and_hides_no_other(hera: World) -> None:
    for name, code in BROKEN.items():
        family_folder(hera.workdir, f"hera-{name}", name, f"{name}_family:Family", code)

    rows = table(hera("families"))
    assert rows[0] == ["NAME", "VERSION", "SOURCE", "LAYOUTS", "ERROR"]
    assert all(len(row) == 5 for row in rows), rows  # one line per family, even for a multi-line error
    by_name = {row[0]: row for row in rows[1:]}
    assert by_name["abraxas"][1:3] == ["0.2.0", "installed (hera-abraxas)"] and by_name["abraxas"][4] == "-"
    assert set(BROKEN) <= set(by_name) and all(by_name[name][1] == "-" for name in BROKEN)
    assert "ModuleNotFoundError" in by_name["missing"][-1]
    assert "no 'example' layout" in by_name["exampleless"][-1]
    assert "RuntimeError: cannot start: libfoo.so.1 not found install libfoo" in by_name["multiline"][-1]

    one_error_line(
        hera("--family", "multiline", "build"), "family 'multiline'", "is broken", "RuntimeError: cannot start", rc=1
    )
    assert hera.files() == []


def test_listings_refuse_unknown_options_in_one_line(hera: World) -> None:
    one_error_line(hera("layouts", "--jsn"), "unrecognized arguments: --jsn", "--help", rc=2)


# -- hera agents: read what up agents published, never ask them ----------------------------------


def agents_rows(world: World, *args: str) -> dict[str, dict[str, Any]]:
    """``hera agents ARGS --json``, by uuid."""
    return {row["uuid"]: row for row in as_json(world("agents", *args, "--json", timeout=60))}


def publish(files: RuntimeFiles, pid: int, **fields: Any) -> None:
    """Write the status file an up agent keeps in its runtime directory."""
    LiveStatus(uuid=files.uuid, pid=pid, **({"state": "running", "iteration": 0, "mode": "detached", "device": "cpu"} | fields)).write(files.status)


def test_agents_shows_what_an_up_agent_published_and_never_connects_to_it(hera: World) -> None:
    with_private_system_dir(hera)
    make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    hera("install", "brain.json", check=True)
    uuid = read_head(hera.workdir / "brain.json")["uuid"]
    stand_in = FakeAgent("brisk-otter", uuid)
    try:
        write_pid_file(runtime_of(hera), uuid, stand_in.pid)
        files = RuntimeFiles(runtime_of(hera), uuid)
        publish(files, stand_in.pid, state="paused", iteration=4242, rate=12.5, mode="daemon", tcp_port=45678, holder_pid=None)
        with socket.socket(socket.AF_UNIX) as listening:  # its control socket, listening, never answering
            listening.bind(str(files.socket))
            listening.listen()
            listening.setblocking(False)
            row = agents_rows(hera)[uuid]
            shown = table(hera("agents"))
            with pytest.raises(BlockingIOError):
                listening.accept()  # no listing knocked
        assert (row["state"], row["pid"], row["iteration"], row["rate"]) == ("paused", stand_in.pid, 4242, 12.5)
        assert (row["mode"], row["port"], row["holder"], row["device"]) == ("daemon", 45678, None, "cpu")
        header, line = shown[0], shown[1]
        assert dict(zip(header, line, strict=True))["MODE"] == "daemon" and line[3:6] == ["paused", str(stand_in.pid), "4242"]

        # a status an earlier run left (another pid) is not believed: plain "up", the cached iteration
        publish(files, stand_in.pid + 1, state="standby", iteration=99)
        row = agents_rows(hera)[uuid]
        assert (row["state"], row["iteration"], row["mode"]) == ("up", 0, None)
    finally:
        stand_in.stop()


@pytest.fixture(scope="module")
def alice() -> Iterator[Any]:
    """A real second user with a home, whose cache root lists."""
    yield from throwaway_user(home=True)


def test_root_lists_another_users_up_agent_from_her_pid_file_and_status(hera: World, alice: Any) -> None:
    with_private_system_dir(hera)
    make_instance(hera.workdir, "hers.json", callsign="hers")
    hera("install", "--user", alice.pw_name, "hers.json", check=True)
    uuid = read_head(hera.workdir / "hers.json")["uuid"]
    # her runtime directory, private to her, where her agent holds its lock for its whole life
    files = RuntimeFiles(Path(tempfile.mkdtemp(prefix="hera-her-run-")), uuid)
    files.lock.touch(0o600)
    for path in (files.directory, files.lock):
        os.chown(path, alice.pw_uid, alice.pw_gid)
    title = f"hera: hers {uuid[:8]} abraxas/example"
    hers = subprocess.Popen(
        ["bash", "-c", 'exec 9<"$1"; exec -a "$0" sleep 300', title, str(files.lock)],
        user=alice.pw_uid, group=alice.pw_gid, extra_groups=[],
    )
    try:
        wait_for(lambda: _titled(hers.pid, title), 10, "her agent's title")
        # where it runs there is no pid-file: that much root can see
        row = agents_rows(hera, "--user", alice.pw_name)[uuid]
        assert (row["state"], row["pid"]) == ("up (no pid-file)", hers.pid)

        (files.directory / f"{uuid}.pid").write_text(f"{hers.pid}\n")
        publish(files, hers.pid, iteration=777, holder_pid=hers.pid, mode="attached")
        for path in (files.directory / f"{uuid}.pid", files.status):
            os.chown(path, alice.pw_uid, alice.pw_gid)
        for scope in (("--user", alice.pw_name), ("--all",)):
            row = agents_rows(hera, *scope)[uuid]
            assert (row["owner"], row["state"], row["pid"], row["iteration"]) == (alice.pw_name, "running", hers.pid, 777)
            assert (row["mode"], row["holder"]) == ("attached", hers.pid)
    finally:
        hers.kill()
        hers.wait()
        subprocess.run(["rm", "-rf", str(files.directory)], check=False)


def _titled(pid: int, title: str) -> bool:
    import psutil

    try:
        return " ".join(psutil.Process(pid).cmdline()).startswith(title)
    except psutil.Error:
        return False


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[World, dict[str, Any]]]:
    """Two real tick daemons: one running; one paused, upped with another runtime directory than the listing's."""
    with World(tmp_path_factory.mktemp("running")) as world:
        tick_world(world)
        elsewhere = Path(tempfile.mkdtemp(prefix="hera-else-"))
        try:
            build(world, "a.json", seed=1)
            build(world, "b.json", seed=2)
            yield world, {
                "running": up_daemon(world, "a.json"),
                "elsewhere": up_daemon(world, "b.json", "--paused", env={"HERA_RUNTIME_DIR": str(elsewhere)}),
            }
        finally:
            reap_agents(world)
            subprocess.run(["rm", "-rf", str(elsewhere)], check=False)


def test_agents_lists_real_up_agents_as_they_published_themselves(running: tuple[World, dict[str, Any]]) -> None:
    world, ups = running
    up = ups["running"]
    wait_for(lambda: request(world, up.uuid, "status")["iteration"] > 0, what="iterations")
    row = agents_rows(world)[up.uuid]
    assert (row["state"], row["pid"], row["mode"], row["port"], row["device"]) == ("running", up.pid, "daemon", up.port, "cpu")
    assert row["iteration"] >= 0 and row["holder"] is None


def test_an_agent_upped_with_another_runtime_directory_is_listed_with_its_pid_file(running: tuple[World, dict[str, Any]]) -> None:
    world, ups = running
    up = ups["elsewhere"]
    row = agents_rows(world)[up.uuid]  # the listing's runtime directory is the default one, not the agent's
    assert row["state"] != "up (no pid-file)"
    assert (row["state"], row["pid"], row["mode"], row["port"]) == ("paused", up.pid, "daemon", up.port)
