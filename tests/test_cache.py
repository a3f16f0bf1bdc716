"""The cache, as a user meets it: info, install, agents, inspect, uninstall and destroy.

Every command runs as ``python -m hera`` in a temporary HOME; the tests check
what a user can see: files in the cache and the working directory and their
modes, header fields, stdout and stderr, exit codes, and that nothing half
written (``.hera-tmp-*``) is ever left behind.
"""

from __future__ import annotations

import json
import os
import pwd
import sys

import pytest

from cachekit import (
    cache_of,
    cached,
    make_instance,
    make_lived_instance,
    mode,
    read_head,
    runtime_of,
    with_private_system_dir,
)
from herakit import leftovers, one_error_line

ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def hera(hera):
    """conftest's world, with a system directory of its own."""
    return with_private_system_dir(hera)


def installed(hera, name="brain.json", **tags):
    """Put a fresh instance file in the working directory and install it; its header as installed."""
    path = make_instance(hera.workdir, name, **tags)
    result = hera("install", name)
    assert result.rc == 0, result
    return read_head(cache_of(hera) / f"{read_head(path)['uuid']}.json")


def test_info_shows_where_agents_live_and_each_place_can_be_moved(hera, tmp_path):
    shown = hera("info")
    assert shown.rc == 0, shown
    assert str(cache_of(hera)) in shown.out
    assert str(runtime_of(hera)) in shown.out and hera.env["HERA_SYSTEM_DIR"] in shown.out
    where = json.loads(hera("info", "--json").out)
    # a durable data directory, never the wipeable ~/.cache
    assert where["cache_dir"] == str(cache_of(hera))
    assert where["cache_dir"].startswith(hera.env["XDG_DATA_HOME"])
    assert not where["cache_dir"].startswith(hera.env["XDG_CACHE_HOME"])
    assert where["runtime_dir"] == str(runtime_of(hera))
    assert where["system_dir"] == hera.env["HERA_SYSTEM_DIR"]

    (hera.home / ".herarc").write_text(json.dumps({"cache_dir": str(tmp_path / "from-herarc")}))
    assert json.loads(hera("info", "--json").out)["cache_dir"] == str(tmp_path / "from-herarc")
    by_env = hera("info", "--json", env={"HERA_CACHE_DIR": str(tmp_path / "from-env")})
    assert json.loads(by_env.out)["cache_dir"] == str(tmp_path / "from-env")
    by_flag = hera("--cache-dir", str(tmp_path / "from-flag"), "info", "--json", env={"HERA_CACHE_DIR": str(tmp_path / "from-env")})
    assert json.loads(by_flag.out)["cache_dir"] == str(tmp_path / "from-flag")
    # the system directory is the same for every user, whatever their desktop's XDG_DATA_DIRS says
    if sys.platform.startswith("linux"):
        default = hera("info", "--json", env={"HERA_SYSTEM_DIR": "", "XDG_DATA_DIRS": "/usr/share/gnome:/usr/share"})
        assert json.loads(default.out)["system_dir"] == "/var/lib/hera/agents"


def test_install_copies_the_instance_into_a_private_cache_with_install_time_fields(hera):
    source = make_instance(hera.workdir, "brain.json", callsign="brisk-otter")
    before = source.read_bytes()
    uuid = read_head(source)["uuid"]
    cache_of(hera).mkdir(parents=True)
    cache_of(hera).chmod(0o755)  # made by hand, open to all: hera makes it private

    result = hera("install", "brain.json")

    assert result.rc == 0, result
    in_cache = cache_of(hera) / f"{uuid}.json"
    assert result.out == f"installed brisk-otter {uuid} -> {in_cache}\n"
    assert result.err == ""
    assert cached(hera) == [in_cache]
    assert mode(in_cache) == 0o600 and mode(cache_of(hera)) == 0o700
    header = read_head(in_cache)
    assert header["installed"]["owner"] == ME
    assert header["installed"]["scope"] == "user"
    assert header["installed"]["installed_at"]
    assert header["callsign"] == "brisk-otter"
    assert source.read_bytes() == before  # the working-directory file never changes
    assert not leftovers(cache_of(hera), hera.workdir)


def test_installing_an_installed_uuid_is_refused_and_says_what_to_do(hera):
    header = installed(hera, callsign="brisk-otter")
    in_cache = cache_of(hera) / f"{header['uuid']}.json"
    before = in_cache.read_bytes()
    # the same agent under another file name and callsign is still the same agent
    make_instance(hera.workdir, "copy.json", uuid=header["uuid"], callsign="calm-lynx")

    for name in ("brain.json", "copy.json"):
        refused = hera("install", name)
        one_error_line(refused, "already installed", header["uuid"], "--as-new", f"hera --uuid {header['uuid'][:8]} up", rc=4)
        assert refused.out == ""

    assert cached(hera) == [in_cache]
    assert in_cache.read_bytes() == before
    assert not leftovers(cache_of(hera))


def test_a_callsign_clash_gets_a_numeric_suffix(hera):
    first = installed(hera, "a.json", callsign="brisk-otter")
    make_instance(hera.workdir, "b.json", callsign="brisk-otter")
    make_instance(hera.workdir, "c.json", callsign="brisk-otter")

    second = hera("install", "b.json")
    third = hera("install", "c.json")

    assert first["callsign"] == "brisk-otter"
    assert second.rc == 0 and "installed brisk-otter-2 " in second.out
    assert "(callsign changed from brisk-otter)" in second.out
    assert third.rc == 0 and "installed brisk-otter-3 " in third.out
    callsigns = sorted(row["callsign"] for row in json.loads(hera("agents", "--json").out))
    assert callsigns == ["brisk-otter", "brisk-otter-2", "brisk-otter-3"]


def test_a_callsign_from_the_config_is_used_at_build_and_kept_at_install(hera):
    built = hera("--family", "abraxas", "--callsign", "my-agent", "build", "-o", "mine.json")
    assert built.rc == 0, built
    assert hera("install", "mine.json").rc == 0
    assert [row["callsign"] for row in json.loads(hera("agents", "--json").out)] == ["my-agent"]


def test_agents_lists_every_installed_agent_as_a_table_and_as_json(hera):
    empty = hera("agents")
    assert empty.rc == 0 and empty.err == "" and len(empty.out.splitlines()) == 1
    headers = [installed(hera, f"{n}.json") for n in range(3)]

    table = hera("agents")

    assert table.rc == 0 and table.err == ""
    title, *rows = table.out.splitlines()
    wanted = ["UUID", "CALLSIGN", "FAMILY/LAYOUT", "STATE", "PID", "ITERATION", "DEVICE", "SIZE", "LAST UP"]
    assert title.startswith("UUID  ") and [title.index(word) for word in wanted] == sorted(title.index(word) for word in wanted)
    assert len(rows) == 3
    for header in headers:
        row = next(line.split() for line in rows if line.startswith(header["uuid"][:8]))
        assert row[:6] == [header["uuid"][:8], header["callsign"], "abraxas/example", "built", "-", "0"]
    listed = {row["uuid"]: row for row in json.loads(hera("agents", "--json").out)}
    assert set(listed) == {h["uuid"] for h in headers}
    for header in headers:
        row = listed[header["uuid"]]
        assert row["callsign"] == header["callsign"]
        assert (row["family"], row["layout"], row["state"], row["pid"], row["iteration"]) == ("abraxas", "example", "built", None, 0)
        assert row["size"] == os.path.getsize(row["path"]) and row["owner"] == ME
        assert row["last_up"] is None and row["device"] is None


def test_a_broken_file_in_the_cache_is_listed_with_its_error_and_can_be_destroyed(hera):
    good = installed(hera)
    broken = cache_of(hera) / "0badf11e-0000-4000-8000-000000000000.json"
    broken.write_text('{"format": "hera-instance", "format_version": 1, "header": {"uuid": 12')

    rows = {row["uuid"]: row for row in json.loads(hera("agents", "--json").out)}

    assert rows[good["uuid"]]["state"] == "built"
    row = rows["0badf11e-0000-4000-8000-000000000000"]
    assert row["state"] == "broken" and str(broken) in row["error"]
    assert "ERROR" in hera("agents").out.splitlines()[0]
    assert hera("--uuid", "0bad", "destroy").rc == 0
    assert cached(hera) == [cache_of(hera) / f"{good['uuid']}.json"]


def test_inspect_shows_header_areas_weight_statistics_state_and_locations(hera):
    header = installed(hera, callsign="brisk-otter")
    in_cache = cache_of(hera) / f"{header['uuid']}.json"

    text = hera("--uuid", header["uuid"][:6], "inspect")

    assert text.rc == 0, text
    assert text.out.startswith(f"brisk-otter  {header['uuid']}\n")
    for fragment in ("family      abraxas", "layout example", "state       built", "iteration   0",
                     f"by {ME} (user)", f"file        {in_cache}", "user cache", "area        input", "arrays", "weights."):
        assert fragment in text.out, fragment
    report = json.loads(hera("--callsign", "brisk-otter", "inspect", "--json").out)
    assert report["path"] == str(in_cache) and report["location"] == "user cache"
    assert report["file_bytes"] == in_cache.stat().st_size
    assert report["state"] == "built" and report["pid"] is None
    assert report["header"]["uuid"] == header["uuid"] and report["header"]["iteration"] == 0
    assert report["header"]["summary"]["areas"]
    weights = [row for name, row in report["arrays"].items() if name.startswith("weights.")]
    assert weights and all({"min", "max", "mean", "std", "nonzero", "shape", "dtype", "bytes"} <= row.keys() for row in weights)


def test_inspect_reads_a_file_that_is_not_installed(hera):
    make_instance(hera.workdir, "loose.json", callsign="calm-lynx")
    report = json.loads(hera("inspect", "loose.json", "--json").out)
    assert report["location"] == "file" and report["header"]["callsign"] == "calm-lynx"
    assert cached(hera) == []


def test_uninstall_moves_the_cached_file_to_the_working_directory(hera):
    header = installed(hera)
    in_cache = cache_of(hera) / f"{header['uuid']}.json"
    content = in_cache.read_bytes()

    result = hera("--uuid", header["uuid"][:8], "uninstall")

    out = hera.workdir / f"{header['uuid']}.json"
    assert result.rc == 0, result
    assert result.out == f"uninstalled {header['callsign']} {header['uuid']} -> {out}\n"
    assert out.read_bytes() == content  # header, installation record and dynamic state all kept
    assert mode(out) == 0o600
    assert cached(hera) == []
    assert json.loads(hera("agents", "--json").out) == []
    assert not leftovers(cache_of(hera), hera.workdir)


def test_uninstall_never_overwrites_a_file(hera):
    header = installed(hera)
    taken = hera.workdir / "taken.json"
    taken.write_text("mine\n")
    # the file 'hera build' wrote is named <uuid>.json: the default target is taken too
    make_instance(hera.workdir, f"{header['uuid']}.json", uuid=header["uuid"])
    by_default = (hera.workdir / f"{header['uuid']}.json").read_bytes()

    for args in (["-o", "taken.json"], []):
        refused = hera("--uuid", header["uuid"], "uninstall", *args)
        one_error_line(refused, "already exists", "-o FILE", rc=4)

    assert taken.read_text() == "mine\n"
    assert (hera.workdir / f"{header['uuid']}.json").read_bytes() == by_default
    assert cached(hera) == [cache_of(hera) / f"{header['uuid']}.json"]
    assert not leftovers(cache_of(hera), hera.workdir)


def test_reinstalling_an_uninstalled_agent_keeps_its_content(hera):
    from hera.instance import load

    make_lived_instance(hera.workdir, "lived.json", callsign="brisk-otter")
    assert hera("install", "lived.json").rc == 0
    shown = json.loads(hera("agents", "--json").out)[0]
    assert (shown["state"], shown["iteration"], shown["device"]) == ("down", 1234, "cpu")
    before = load(cache_of(hera) / f"{shown['uuid']}.json")
    assert hera("--callsign", "brisk-otter", "uninstall", "-o", "back.json").rc == 0
    assert load(hera.workdir / "back.json").header == before.header  # uninstall keeps the dynamic state

    again = hera("install", "back.json")

    assert again.rc == 0, again
    after = load(cache_of(hera) / f"{shown['uuid']}.json")  # verifies every checksum
    assert after.header.model_dump(exclude={"installed"}) == before.header.model_dump(exclude={"installed"})
    assert after.header.dynamic and after.header.iteration == 1234
    assert after.arrays.keys() == before.arrays.keys() and "state.membrane" in after.arrays
    for name, array in before.arrays.items():
        assert array.dtype == after.arrays[name].dtype
        assert array.tobytes() == after.arrays[name].tobytes(), name
    assert after.header.installed.owner == ME


def test_destroy_in_a_script_removes_the_agent_for_good(hera):
    doomed = installed(hera, "a.json")
    kept = installed(hera, "b.json")
    work_before = sorted(p.name for p in hera.workdir.iterdir())

    result = hera("--uuid", doomed["uuid"][:8], "destroy")  # stdin is not a terminal: no question

    assert result.rc == 0, result
    assert result.out == f"destroyed {doomed['callsign']} {doomed['uuid']}\n"
    assert cached(hera) == [cache_of(hera) / f"{kept['uuid']}.json"]
    assert sorted(p.name for p in hera.workdir.iterdir()) == work_before
    gone = hera("--uuid", doomed["uuid"], "destroy")
    one_error_line(gone, "no installed agent matches", doomed["uuid"], rc=3)
    assert not leftovers(cache_of(hera), hera.workdir)


def test_without_an_identifier_the_only_agent_is_meant(hera):
    assert one_error_line(hera("destroy"), "no agents are installed", rc=3)
    first = installed(hera, "a.json")
    second = installed(hera, "b.json")

    for verb in ("destroy", "uninstall"):
        one_error_line(hera(verb), "2 agents are installed", f"say which to {verb}", "--uuid", rc=2)
    assert len(cached(hera)) == 2

    assert hera("--uuid", first["uuid"], "destroy").rc == 0
    alone = hera("destroy")
    assert alone.rc == 0 and second["uuid"] in alone.out
    assert cached(hera) == []


def test_a_file_and_an_identifier_together_is_an_error(hera):
    header = installed(hera)
    make_instance(hera.workdir, "other.json")

    one_error_line(hera("--uuid", header["uuid"][:8], "install", "other.json"), "install does not take --uuid", rc=2)
    one_error_line(hera("--callsign", header["callsign"], "inspect", "other.json"), "give a file or --callsign, not both", rc=2)
    one_error_line(hera("--uuid", "abc", "--callsign", "x", "inspect"), "not several", rc=2)
    assert len(cached(hera)) == 1


def test_a_corrupt_file_is_refused_and_nothing_is_installed(hera):
    source = make_lived_instance(hera.workdir, "brain.json")
    data = bytearray(source.read_bytes())
    # change one base64 character inside an array's data: its checksum must catch it
    at = data.index(b'"data": "') + len(b'"data": "') + 100
    data[at] = ord("A") if data[at] != ord("A") else ord("B")
    source.write_bytes(bytes(data))

    refused = hera("install", "brain.json")

    one_error_line(refused, "brain.json", rc=1)
    assert cached(hera) == [] and not leftovers(cache_of(hera), hera.workdir)


# -- confirmation on a terminal -----------------------------------------------------------------


def _on_a_terminal(hera, *args, answer=None):
    """Run ``hera ARGS`` on a pseudo-terminal; answer the confirmation question if ``answer`` is given."""
    pexpect = pytest.importorskip("pexpect")
    child = pexpect.spawn(
        sys.executable, ["-m", "hera", *args], env=hera.env, cwd=str(hera.workdir), encoding="utf-8", timeout=30
    )
    if answer is not None:
        child.expect("Type its callsign to confirm: ")
        child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    return child.exitstatus, child.before


def test_destroy_on_a_terminal_asks_for_the_callsign(hera):
    header = installed(hera, callsign="brisk-otter")
    in_cache = cache_of(hera) / f"{header['uuid']}.json"
    destroy = ("--uuid", header["uuid"][:8], "destroy")

    status, said = _on_a_terminal(hera, *destroy, answer="brisk-otte")
    assert status == 1 and "not confirmed; nothing was destroyed" in said and "Traceback" not in said
    assert in_cache.exists()

    status, said = _on_a_terminal(hera, *destroy, answer="")
    assert status == 1 and in_cache.exists()

    status, said = _on_a_terminal(hera, *destroy, answer="brisk-otter")
    assert status == 0 and f"destroyed brisk-otter {header['uuid']}" in said
    assert not in_cache.exists()


def test_destroy_yes_does_not_ask_even_on_a_terminal(hera):
    header = installed(hera, callsign="brisk-otter")
    status, said = _on_a_terminal(hera, "--callsign", "brisk-otter", "destroy", "--yes")
    assert status == 0 and "Type its callsign" not in said
    assert not (cache_of(hera) / f"{header['uuid']}.json").exists()
