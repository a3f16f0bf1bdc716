"""Settings, from every place a user can put them, as ``hera build`` records them.

Precedence, lowest first: defaults < the family's layout < ``~/.herarc`` <
``./hera.json`` < ``HERA_*`` environment < command-line flags. Each level is
proven by a build whose header shows the winning ``seed``, ``layout`` and
``params``. A mistake in any source is one line naming the file (or
variable) and the key, with the nearest valid key for a typo, and nothing
is built.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from herakit import Result, World, one_error_line

#: What abraxas (0.2.0) adds to every layout's ``hidden`` section that these tests do not set: the
#: winner-take-all group height and the lag pairs of the hidden sheets' structural synapses.
HIDDEN_EXTRA: dict[str, Any] = {"group_rows": 3, "lags": [2, 8, 2, 7, 2, 6, 2, 8, 2, 7, 2, 6, 2, 3, 2, 4, 2, 5, 2, 3, 2, 4, 2, 5]}

#: Each level of settings, lowest first, and what it sets: seed, layout parameters.
LEVELS: list[tuple[str, int | None, int]] = [
    # (level, seed it sets, hidden.width it sets); the layout "small" has hidden.width 64, the default is 32
    ("layout", None, 64),
    ("~/.herarc", 1, 40),
    ("./hera.json", 2, 41),
    ("environment", 3, 42),
    ("flags", 4, 43),
]


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


def built_header(hera: World, result: Result) -> dict[str, Any]:
    assert result.rc == 0, str(result)
    (path,) = hera.files(pattern="*-*.json")  # <uuid>.json, beside any hera.json
    return json.loads(path.read_text())["header"]


@pytest.mark.parametrize("top", range(len(LEVELS)), ids=[level for level, _, _ in LEVELS])
def test_each_level_of_settings_beats_the_one_below(hera: World, top: int) -> None:
    # ~/.herarc always names the family and layout, so a bare `hera build` builds; it also sets
    # hidden.depth, which no level above touches: nested parameters merge key by key.
    herarc: dict[str, Any] = {"family": "abraxas", "layout": "small", "params": {"hidden": {"depth": 2}}}
    env: dict[str, str] = {}
    flags: list[str] = []
    if top >= 1:
        herarc |= {"seed": 1, "params": {"hidden": {"depth": 2, "width": 40}}}
    write_json(hera.herarc, herarc)
    if top >= 2:
        write_json(hera.hera_json, {"seed": 2, "params": {"hidden": {"width": 41}}})
    if top >= 3:
        env = {"HERA_SEED": "3", "HERA_PARAMS": json.dumps({"hidden": {"width": 42}})}
    if top >= 4:
        flags = ["--seed", "4", "--set", "hidden.width=43"]

    head = built_header(hera, hera(*flags, "build", env=env))

    level, seed, width = LEVELS[top]
    assert head["layout"] == "small" and head["family"]["name"] == "abraxas"
    assert head["params"]["hidden"] == {"width": width, "height": 72, "depth": 2} | HIDDEN_EXTRA, level
    if seed is not None:
        assert head["seed"] == seed, level


def test_the_layout_itself_follows_the_same_precedence(hera: World) -> None:
    write_json(hera.herarc, {"family": "abraxas", "layout": "medium"})
    write_json(hera.hera_json, {"layout": "nonexistent"})

    head = built_header(hera, hera("build", "--layout", "example", env={"HERA_LAYOUT": "small"}))

    assert head["layout"] == "example" and head["params"]["hidden"]["width"] == 32


def test_an_empty_variable_counts_as_not_set_and_variables_for_tools_are_no_settings(hera: World) -> None:
    write_json(hera.herarc, {"family": "abraxas", "layout": "small"})
    variables = {"HERA_LAYOUT": "", "HERA_SEED": "", "HERA_PARAMS": "", "HERA_TAICHI_CACHE": str(hera.root / "ti")}

    head = built_header(hera, hera("build", env=variables))

    assert head["layout"] == "small"


def test_a_family_section_beats_params_in_the_same_file(hera: World) -> None:
    write_json(
        hera.hera_json,
        {"params": {"hidden": {"width": 40, "height": 20}}, "families": {"abraxas": {"hidden": {"width": 48}}}},
    )

    head = built_header(hera, hera("--family", "abraxas", "build"))

    assert head["params"]["hidden"] == {"width": 48, "height": 20, "depth": 1} | HIDDEN_EXTRA


def test_every_place_hera_keeps_things_is_inside_the_test_users_world(hera: World) -> None:
    where = json.loads(hera("info", "--json", check=True).out)

    assert Path(where["cache_dir"]).is_relative_to(hera.home / ".local" / "share")
    assert Path(where["state_dir"]).is_relative_to(hera.home / ".local" / "state")
    assert Path(where["runtime_dir"]).is_relative_to(hera.runtime_dir)
    assert Path(where["system_dir"]).is_relative_to(hera.system_dir)
    assert set(where["settings_files"]) == {str(hera.herarc), str(hera.hera_json)}


def test_settings_gathered_in_process_keep_each_source_for_blame(
    isolated: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hera import config

    write_json(isolated.herarc, {"family": "abraxas", "seed": 1})
    write_json(isolated.hera_json, {"seed": 2, "layout": "small"})
    monkeypatch.setenv("HERA_SEED", "3")

    settings, sources = config.gather({"seed": 4})

    assert (settings.family, settings.layout, settings.seed) == ("abraxas", "small", 4)
    assert [source.name for source in sources] == [str(isolated.herarc), str(isolated.hera_json), "environment", "command line"]


# -- mistakes: one line naming the source and the key, and nothing built -----------------------


def settings_file(hera: World, which: str) -> Path:
    return {"herarc": hera.herarc, "hera.json": hera.hera_json}[which]


def refused(hera: World, result: Result, *fragments: str) -> str:
    line = one_error_line(result, *fragments, rc=1)
    assert result.out == "" and hera.files(pattern="*-*.json") == []
    return line


@pytest.mark.parametrize(
    "which, text, fragments",
    [
        ("herarc", '{\n  "seed": 1,\n}\n', ["malformed JSON at line 3 column 1"]),
        ("hera.json", '{\n  "seed": 1,\n}\n', ["malformed JSON at line 3 column 1"]),
        ("herarc", "seed = 1\n", ["malformed JSON at line 1 column 1"]),
        ("hera.json", "[1, 2]\n", ["must be a JSON object"]),
    ],
    ids=["herarc-trailing-comma", "hera.json-trailing-comma", "herarc-not-json", "hera.json-not-an-object"],
)
def test_a_malformed_settings_file_is_one_line_naming_the_file(
    hera: World, which: str, text: str, fragments: list[str]
) -> None:
    path = settings_file(hera, which)
    path.write_text(text)

    refused(hera, hera("--family", "abraxas", "build"), str(path), *fragments)


@pytest.mark.parametrize(
    "which, settings, fragments",
    [
        ("herarc", {"sead": 1}, ["unknown key 'sead'", "did you mean 'seed'?"]),
        ("hera.json", {"theme": "red"}, ["unknown key 'theme'", "valid keys:", "seed"]),
        ("herarc", {"seed": "seven"}, ["key 'seed'", "integer"]),
        ("hera.json", {"params": [1]}, ["key 'params'", "dictionary"]),
        ("herarc", {"params": {"hidden": {"widht": 40}}}, ["(params)", "'hidden.widht'", "did you mean 'width'?"]),
        ("hera.json", {"families": {"abraxas": {"hidden": {"width": "wide"}}}}, ["(families.abraxas)", "'hidden.width'", "integer"]),
    ],
    ids=["typo", "unknown", "type", "type-params", "param-typo", "param-type"],
)
def test_a_bad_key_is_one_line_naming_the_file_the_key_and_the_nearest(
    hera: World, which: str, settings: dict[str, Any], fragments: list[str]
) -> None:
    path = settings_file(hera, which)
    write_json(path, settings)

    refused(hera, hera("--family", "abraxas", "build"), str(path), *fragments)


@pytest.mark.parametrize(
    "variables, fragments",
    [
        ({"HERA_SED": "1"}, ["environment: unknown variable HERA_SED", "did you mean HERA_SEED?"]),
        ({"HERA_SEED": "seven"}, ["environment: HERA_SEED (key 'seed'): ", "integer"]),
        ({"HERA_PARAMS": "{hidden"}, ["HERA_PARAMS must hold a JSON object"]),
        ({"HERA_PARAMS": '{"hidden": {"width": "wide"}}'}, ["environment (params)", "'hidden.width'", "integer"]),
    ],
    ids=["unknown", "type", "malformed", "param-type"],
)
def test_a_bad_variable_is_one_line_naming_the_variable(
    hera: World, variables: dict[str, str], fragments: list[str]
) -> None:
    line = refused(hera, hera("--family", "abraxas", "build", env=variables), *fragments)
    assert line.count("(") == line.count(")")


def test_listings_that_read_settings_report_a_bad_file_the_same_way(hera: World) -> None:
    write_json(hera.herarc, {"devise": "cpu"})

    refused(hera, hera("layouts"), str(hera.herarc), "unknown key 'devise'", "did you mean 'device'?")
