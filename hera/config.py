"""Settings, gathered once from every place a user can put them.

Precedence, lowest first: built-in defaults < the family's layout <
``~/.herarc`` < ``./hera.json`` < ``HERA_*`` environment < command-line flags.
Both files are JSON objects with the keys of :class:`Settings`. Each source is
validated on its own, so an error names the file (or variable, or flag) and
the key, and suggests the nearest valid key for a typo. Layout parameters
(``params``, and ``families.<name>`` for one family only) are validated by the
family against its layout, and a bad one is blamed on the source that set it.

Nothing below the command line parses arguments: commands read a Settings.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hera.errors import HeraError, nearest
from hera.family import deep_merge
from hera.instance import CALLSIGN_PATTERN

ENV_PREFIX = "HERA_"


class Settings(BaseModel):
    """Every setting hera reads; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")
    family: str | None = Field(default=None, description="family to build from")
    layout: str = Field(default="example", description="layout of the family")
    callsign: str | None = Field(default=None, pattern=CALLSIGN_PATTERN, max_length=64)
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="random seed of a new instance")
    device: str = Field(default="auto", description="preferred device: auto, cpu, cuda or cuda:N")
    cache_dir: Path | None = Field(default=None, description="where installed agents live")
    system_dir: Path | None = Field(default=None, description="where system-wide agents live")
    runtime_dir: Path | None = Field(default=None, description="pid-files and sockets")
    autosave_interval: float = Field(default=300.0, ge=0, description="seconds between autosaves, 0 = off")
    params: dict[str, Any] = Field(default_factory=dict, description="layout parameter overrides")
    families: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-family layout parameter overrides"
    )


ENV_KEYS = {f"{ENV_PREFIX}{name.upper()}": name for name in Settings.model_fields}


class Source(BaseModel):
    """One layer of settings and where it came from, for error messages."""

    name: str
    values: dict[str, Any]


def _check(source: str, values: Mapping[str, Any], key_label: str = "key") -> dict[str, Any]:
    try:
        Settings.model_validate(dict(values))
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        if first["type"] == "extra_forbidden":
            guess = nearest(key, list(Settings.model_fields))
            hint = f"did you mean {guess!r}?" if guess else "valid keys: " + ", ".join(Settings.model_fields)
            raise HeraError(f"{source}: unknown {key_label} {key!r}", hint=hint) from None
        raise HeraError(f"{source}: {key_label} {key!r}: {first['msg']}") from None
    return dict(values)


def _check_variable(var: str, key: str, value: Any) -> None:
    """One ``HERA_*`` variable's value, blamed on the variable (and the key it sets)."""
    try:
        Settings.model_validate({key: value})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise HeraError(f"environment: {var} (key {where!r}): {first['msg']}") from None


def read_file(path: Path) -> Source | None:
    """A JSON settings file, or None when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise HeraError(f"{path}: cannot read settings ({exc.__class__.__name__})") from None
    try:
        values = json.loads(text) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise HeraError(f"{path}: malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    if not isinstance(values, dict):
        raise HeraError(f"{path}: settings must be a JSON object of keys")
    return Source(name=str(path), values=_check(str(path), values))


def read_environment(environ: Mapping[str, str]) -> Source:
    """``HERA_<KEY>`` variables; ``params`` and ``families`` take JSON objects.

    An empty variable counts as not set (as Python's own ``PYTHON*`` do), so
    ``HERA_LAYOUT= hera ...`` leaves the files' layout in force.
    """
    values: dict[str, Any] = {}
    for var, raw in environ.items():
        if not var.startswith(ENV_PREFIX) or var in IGNORED_ENV:
            continue
        key = ENV_KEYS.get(var)
        if key is None:
            guess = nearest(var, list(ENV_KEYS))
            hint = f"did you mean {guess}?" if guess else "valid: " + ", ".join(ENV_KEYS)
            raise HeraError(f"environment: unknown variable {var}", hint=hint)
        if raw == "":
            continue
        if key in ("params", "families"):
            try:
                values[key] = json.loads(raw)
            except json.JSONDecodeError:
                raise HeraError(f"environment: {var} must hold a JSON object") from None
        else:
            values[key] = raw
    for var, key in ENV_KEYS.items():
        if key in values:
            _check_variable(var, key, values[key])
    return Source(name="environment", values=values)


#: Variables with the prefix that are not settings (read elsewhere: tests, the agent's kernels).
IGNORED_ENV = frozenset({"HERA_TEST_GPU", "HERA_TAICHI_CACHE"})


def home_file() -> Path:
    return Path.home() / ".herarc"


def work_file(workdir: Path) -> Path:
    return workdir / "hera.json"


def gather(
    flags: Mapping[str, Any],
    *,
    workdir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, list[Source]]:
    """Merge every source into one Settings; keep the sources for blame."""
    workdir = Path.cwd() if workdir is None else workdir
    environ = os.environ if environ is None else environ
    sources = [s for s in (read_file(home_file()), read_file(work_file(workdir))) if s is not None]
    sources.append(read_environment(environ))
    sources.append(Source(name="command line", values=_check("command line", {k: v for k, v in flags.items() if v is not None}, key_label="option")))
    merged: dict[str, Any] = {}
    for source in sources:
        merged = deep_merge(merged, source.values)
    return Settings.model_validate(merged), sources


def param_overrides(family: str, sources: list[Source]) -> list[tuple[str, dict[str, Any]]]:
    """The layout parameter patches for ``family``, in rising precedence, each named by its source.

    Within one source the ``families.<family>`` section beats ``params``: the
    more specific setting wins, as a user who wrote both would expect.
    """
    patches: list[tuple[str, dict[str, Any]]] = []
    for source in sources:
        if source.values.get("params"):
            patches.append((f"{source.name} (params)", source.values["params"]))
        per_family = source.values.get("families", {}).get(family)
        if per_family:
            patches.append((f"{source.name} (families.{family})", per_family))
    return patches


def parse_assignment(text: str) -> dict[str, Any]:
    """``--set hidden.width=48`` as a nested patch; the value is JSON, or a plain string."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise HeraError(f"--set {text!r}: expected KEY=VALUE, for example --set hidden.width=48")
    try:
        value: Any = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    patch: dict[str, Any] = {}
    node = patch
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = value
    return patch
