"""Settings that are empty, poisoned or absurdly deep are one clear line, never a traceback or a wrong place.

An empty path must not quietly mean the working directory (which hera would
then chmod 0700 and list as a cache), a NUL byte must not reach the file
system, and JSON nested thousands deep (which Python's json answers with a
RecursionError) is refused with the source named, whichever of the six
places it comes from.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
from pathlib import Path

import pytest

from cachekit import make_instance, mode
from herakit import World, one_error_line

PATH_KEYS = ["cache_dir", "system_dir", "runtime_dir"]
DEEP = 20_000


def deep_json(depth: int = DEEP) -> str:
    """An object holding arrays nested ``depth`` deep: ``{"a": [[...]]}``.

    Arrays, because one argument or variable may hold only 128 KiB.
    """
    return '{"a": ' + "[" * depth + "]" * depth + "}"


@pytest.mark.parametrize(
    "source, key",
    [(source, key) for source in ("hera.json", "herarc") for key in PATH_KEYS] + [("flag", "cache_dir")],
)
def test_an_empty_path_setting_is_refused_not_taken_as_the_working_directory(
    hera: World, source: str, key: str
) -> None:
    make_instance(hera.workdir, "lying-around.json")
    hera.workdir.chmod(0o755)
    args: list[str] = []
    if source == "hera.json":
        hera.hera_json.write_text(json.dumps({key: ""}))
        fragments = [str(hera.hera_json), key]
    elif source == "herarc":
        hera.herarc.write_text(json.dumps({key: ""}))
        fragments = [str(hera.herarc), key]
    else:
        args = ["--cache-dir", ""]
        fragments = ["--cache-dir"]

    for command in (["agents"], ["info"]):
        line = one_error_line(hera(*args, *command), *fragments)
        assert "empty" in line
    assert mode(hera.workdir) == 0o755  # never made "private" as if it were a cache


@pytest.mark.parametrize("key", PATH_KEYS)
def test_a_nul_byte_in_a_path_setting_is_one_line(hera: World, key: str) -> None:
    hera.hera_json.write_text(json.dumps({key: "/tmp/a\u0000b"}))
    one_error_line(hera("agents"), str(hera.hera_json), key, "NUL")


def test_an_empty_variable_still_counts_as_not_set(hera: World) -> None:
    """The documented rule for HERA_* variables stays: empty is unset, not the working directory."""
    result = hera("info", "--json", env={"HERA_CACHE_DIR": ""}, check=True)
    assert json.loads(result.out)["cache_dir"] != "."
    assert Path(json.loads(result.out)["cache_dir"]).is_absolute()


@pytest.mark.parametrize(
    "source", ["herarc", "hera.json", "HERA_PARAMS", "HERA_FAMILIES", "--set value", "--set key"]
)
def test_settings_nested_too_deep_are_one_line_naming_the_source(hera: World, source: str) -> None:
    env: dict[str, str] = {}
    args: list[str] = []
    if source == "herarc":
        hera.herarc.write_text('{"params": ' + deep_json() + "}")
        fragments = [str(hera.herarc), "deep"]
    elif source == "hera.json":
        hera.hera_json.write_text('{"families": {"abraxas": ' + deep_json() + "}}")
        fragments = [str(hera.hera_json), "deep"]
    elif source.startswith("HERA_"):
        env[source] = deep_json()
        fragments = [source, "deep"]
    elif source == "--set value":
        args = ["--set", "hidden=" + deep_json()]
        fragments = ["--set", "deep"]
    else:
        args = ["--set", ".".join(["a"] * DEEP) + "=1"]
        fragments = ["--set", "deep"]

    for command in (["info"], ["--family", "abraxas", "build"]):
        one_error_line(hera(*args, *command, env=env), *fragments)
    assert not list(hera.workdir.glob("*-*-*-*.json"))


def test_settings_of_an_ordinary_depth_still_work(hera: World) -> None:
    """The limit is far above any real setting: families.<name>.<group>.<key> is four levels."""
    hera.hera_json.write_text(json.dumps({"families": {"abraxas": {"hidden": {"width": 40}}}}))
    result = hera("--family", "abraxas", "layouts", "--json", check=True)
    assert json.loads(result.out)


def test_a_settings_file_that_is_a_fifo_is_one_line_not_a_hang(hera: World) -> None:
    os.mkfifo(hera.hera_json)
    one_error_line(hera("info", timeout=20), str(hera.hera_json), "not a regular file")


# -- a ./hera.json another user planted ---------------------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_a_hera_json_planted_by_another_user_steers_nothing(hera: World, shared: Path) -> None:
    """In a shared directory, ./hera.json may be anyone's: it would choose where your agents go."""
    entry = pwd.getpwnam("nobody")
    planted = json.dumps({"cache_dir": str(shared / "theirs"), "family": "abraxas"})
    subprocess.run(
        ["sh", "-c", "cat > hera.json"], cwd=shared, input=planted, text=True, check=True,
        user=entry.pw_uid, group=entry.pw_gid, extra_groups=[],
    )
    make_instance(hera.workdir, "brain.json")

    line = one_error_line(hera("install", str(hera.workdir / "brain.json"), cwd=shared), str(shared / "hera.json"))
    assert "another user" in line
    assert not (shared / "theirs").exists()
