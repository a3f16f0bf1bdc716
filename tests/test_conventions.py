"""The command line's conventions, as docker's and systemctl's users expect them (issue 14).

* A positional names an agent: a path that exists is an instance file,
  anything else a UUID, prefix or callsign (``hera down 3f2a``).
* Action commands say what they did in one line, as JSON with ``--json``, or
  not at all with ``-q``; a copy is named after the iteration it holds.
* ``grow`` changes only the sizes a family declares growable, and the grown
  agent's layout says it was grown.
* Each ``--help`` lists only the global options its command takes, and one
  given to a command that does not take it is a usage error.
* ``devices --probe`` finds the CPU usable; a broken ``~/.herarc`` stops every
  command with one line, and ``info`` shows it in its report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from agent_helpers import build, reap_agents, tick_world, up_daemon
from cachekit import make_instance
from herakit import World, one_error_line


def test_a_running_agent_is_copied_checkpointed_and_downed_by_positional_with_json_and_quiet(hera: World) -> None:
    tick_world(hera)
    try:
        up = up_daemon(hera, str(build(hera).path))
        # The agent runs on while hera asks it: the copy's name must be the iteration the copy holds.
        copied = json.loads(hera("copy", up.uuid[:6], "--json", check=True).out)
        path = Path(copied["path"])
        from hera.instance import read_header

        held = read_header(path).iteration
        assert path.name == f"{up.uuid}.{held}.json" and copied["iteration"] == held, (path.name, held)
        saved = json.loads(hera("checkpoint", up.callsign, "--json", check=True).out)
        assert saved["uuid"] == up.uuid and saved["iteration"] >= held
        quiet = hera("down", up.callsign[:-1], "-q", check=True)  # a unique prefix of its callsign
        assert quiet.out == "" and quiet.err == ""
        one_error_line(hera("down", up.uuid[:6]), "is not up", rc=4)
    finally:
        reap_agents(hera)


def test_up_of_a_file_with_json_or_quiet_prints_only_what_was_asked(hera: World) -> None:
    """The first up of a file installs it: that must not add a line to ``--json``'s one object, or to ``-q``."""
    tick_world(hera)
    try:
        shown = hera("up", str(build(hera, "a.json").path), "--daemon", "--json", check=True)
        assert json.loads(shown.out)["uuid"], shown.out  # one object, nothing before it
        quiet = hera("up", str(build(hera, "b.json").path), "--daemon", "-q", check=True)
        assert quiet.out == "", quiet.out
    finally:
        reap_agents(hera)


@pytest.fixture
def grown(hera: World) -> World:
    """A user with one installed abraxas/example agent, ``brisk-otter``."""
    make_instance(hera.workdir, "brisk.json", callsign="brisk-otter")
    hera("install", "brisk.json", check=True)
    return hera


def layout(world: World) -> str:
    return json.loads(world("inspect", "brisk-otter", "--json", check=True).out)["header"]["layout"]


def test_grow_changes_only_the_sizes_the_family_declares_and_names_the_new_layout(grown: World) -> None:
    one_error_line(grown("grow", "brisk-otter", "--set", "neuron.leak=0.4"), "grow cannot change neuron.leak", rc=2)
    assert json.loads(grown("inspect", "brisk-otter", "--json").out)["header"]["params"]["neuron"]["leak"] == 0.5
    grown("grow", "brisk-otter", "--set", "hidden.width=40", check=True)
    assert layout(grown) == "example+grown"
    assert "layout small" in grown("grow", "brisk-otter", "--to", "small", check=True).out


def test_devices_probe_finds_the_cpu_usable(hera: World) -> None:
    rows = json.loads(hera("devices", "--probe", "--json", check=True).out)
    cpu = next(row for row in rows if row["id"] == "cpu")
    assert cpu["usable"] and cpu["backends"] == ["cpu"] and not cpu["note"], cpu


@pytest.mark.parametrize("command", ["families", "devices", "layouts", "agents"])
def test_a_broken_herarc_stops_each_command_with_one_line(hera: World, command: str) -> None:
    hera.herarc.write_text("{broken")
    one_error_line(hera(command), str(hera.herarc), "malformed JSON", rc=1)


def test_info_reports_a_broken_herarc_in_full(hera: World) -> None:
    hera.herarc.write_text("{broken")
    shown = hera("info")
    one_error_line(shown, str(hera.herarc), "malformed JSON", rc=1)
    assert re.search(r"settings PROBLEM .*\.herarc: malformed JSON", shown.out), shown
    assert "cache (your agents)" in shown.out and f"{hera.herarc} (found)" in shown.out
    report = json.loads(hera("info", "--json").out)
    assert "malformed JSON" in report["settings_error"] and report["cache_dir"]


def test_help_lists_only_the_global_options_each_command_takes(hera: World) -> None:
    top = hera("--help", check=True).out
    assert "'hera' alone, with no subcommand, opens the hera shell" in top
    families = hera("families", "--help", check=True).out
    assert not any(flag in families for flag in ("--seed", "--uuid", "--family", "--set"))
    build_help = hera("build", "--help", check=True).out
    assert all(flag in build_help for flag in ("--family", "--layout", "--seed", "--set", "--json", "--quiet"))
    assert "--uuid" not in build_help
    down = hera("down", "--help", check=True).out
    assert all(flag in down for flag in ("AGENT", "--uuid", "--callsign", "--json")) and "--seed" not in down
    one_error_line(hera("--seed", "3", "families"), "families does not take --seed", rc=2)


def test_an_unknown_signal_lists_the_valid_names(hera: World) -> None:
    line = one_error_line(hera("signal", "SIGUSR1"), "unknown signal 'SIGUSR1'", rc=2)
    assert "did you mean" not in line and all(name in line for name in ("SIGTERM", "SIGTTIN", "SIGHUP", "SIGSTOP"))


def test_the_settings_doc_gives_the_system_directory_the_code_uses() -> None:
    from hera.cache.paths import default_system_dir

    doc = (Path(__file__).resolve().parent.parent / "docs" / "config.md").read_text(encoding="utf-8")
    row = next(line for line in doc.splitlines() if line.startswith("| `system_dir`"))
    assert f"`{default_system_dir()}`" in row, row
