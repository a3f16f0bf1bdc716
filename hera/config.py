"""Settings, gathered once from every place a user can put them.

Precedence, lowest first: built-in defaults < the family's layout <
``~/.herarc`` < ``./hera.json`` < ``HERA_*`` environment < command-line flags.
Both files are JSON objects with the keys of :class:`Settings`. Each source is
validated on its own, so an error names the file (or variable, or flag) and
the key, and suggests the nearest valid key for a typo. Layout parameters
(``params``, and ``families.<name>`` for one family only) are validated by the
family against its layout, and a bad one is blamed on the source that set it.

Every source is also a way in for someone else: ``./hera.json`` may sit in a
shared directory, a variable or a flag may hold a pasted blob. So a source is
read defensively: a settings file must be a regular file of modest size (a
FIFO would hang; nothing else is even opened, see :mod:`hera.safe_open`),
``./hera.json`` and ``~/.herarc`` must belong to the caller or root (another
user's file would choose where the caller's agents go), JSON may nest only
:data:`MAX_DEPTH` levels (Python's json answers deeper input with a
RecursionError), and a path may be neither empty (which would quietly mean
the working directory) nor contain a NUL byte.

Nothing below the command line parses arguments: commands read a Settings.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from hera.errors import HeraError, nearest
from hera.family import deep_merge
from hera.instance import CALLSIGN_PATTERN
from hera.ownership import others_may_write, trusted_owner, user_name
from hera.safe_open import Refused, open_regular

ENV_PREFIX = "HERA_"

#: Deepest nesting of any settings source. Real settings are four levels at
#: most (``families.<name>.<group>.<key>``); the limit is generous, and far
#: below what would exhaust Python's stack in json, deep_merge or pydantic.
MAX_DEPTH = 32

#: Largest settings file read. Settings are a few hundred bytes; this keeps a
#: file someone pointed us at (a log, a disk image) from filling memory.
MAX_FILE_BYTES = 1 << 20

#: The one setting only ``~/.herarc`` may hold (see :data:`HOME_ONLY`).
TRUST_KEY = "trusted_family_dirs"


def _path_value(value: Any) -> Any:
    """Refuse the path values that would silently mean something else.

    Checked before conversion: ``Path("")`` is ``Path(".")``, so an empty
    ``cache_dir`` would become the working directory, which hera would then
    chmod 0700 and list as a cache. A NUL byte would reach the first system
    call as a ValueError traceback.
    """
    text = str(value) if isinstance(value, (str, PurePath)) else None
    if text == "":
        raise PydanticCustomError("empty_path", "is empty; give a directory, or leave the key out for the default")
    if text is not None and "\0" in text:
        raise PydanticCustomError("nul_in_path", "contains a NUL byte")
    return value


def _absolute(path: Path) -> Path:
    if not path.is_absolute():
        raise PydanticCustomError("relative_path", "must be an absolute path, not {path}", {"path": str(path)})
    return path


#: A path setting: never empty, never with a NUL byte.
SettingPath = Annotated[Path, BeforeValidator(_path_value)]
AbsolutePath = Annotated[Path, BeforeValidator(_path_value), AfterValidator(_absolute)]


class Settings(BaseModel):
    """Every setting hera reads; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")
    family: str | None = Field(default=None, description="family to build from")
    layout: str = Field(default="example", description="layout of the family")
    callsign: str | None = Field(default=None, pattern=CALLSIGN_PATTERN, max_length=64)
    seed: int | None = Field(default=None, ge=0, lt=2**63, description="random seed of a new instance")
    device: str = Field(default="auto", description="preferred device: auto, cpu, cuda or cuda:N")
    cache_dir: SettingPath | None = Field(default=None, description="where installed agents live")
    system_dir: SettingPath | None = Field(default=None, description="where system-wide agents live")
    runtime_dir: SettingPath | None = Field(default=None, description="pid-files and sockets")
    autosave_interval: float = Field(default=300.0, ge=0, description="seconds between autosaves, 0 = off")
    cluster: str | None = Field(
        default=None, min_length=1, description="Ray cluster address to up agents on (docs/cluster.md); none: this machine"
    )
    params: dict[str, Any] = Field(default_factory=dict, description="layout parameter overrides")
    families: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per-family layout parameter overrides"
    )
    trusted_family_dirs: list[AbsolutePath] = Field(
        default_factory=list,
        description="family folders to import although another user could change them (~/.herarc only)",
    )


#: Keys that only ``~/.herarc`` may set. ``trusted_family_dirs`` says whose code
#: hera may run; ``./hera.json`` lives in the very directory whose folders it
#: would vouch for, which in a shared directory another user controls, and a
#: variable or flag is too easily inherited or pasted to grant that.
HOME_ONLY = frozenset({TRUST_KEY})

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
        if key_label == "option":  # say it the way the user typed it
            flag = "--" + str(first["loc"][0]).replace("_", "-")
            raise HeraError(f"{source}: {flag}: {first['msg']}") from None
        raise HeraError(f"{source}: {key_label} {key!r}: {first['msg']}") from None
    return dict(values)


def _refuse_home_only(source: str, values: Mapping[str, Any], label: str = "key {key!r}") -> None:
    """Keys of :data:`HOME_ONLY` set anywhere but ``~/.herarc``: one line saying where they belong."""
    for key in sorted(HOME_ONLY & set(values)):
        raise HeraError(
            f"{source}: {label.format(key=key)} is read only from ~/.herarc",
            hint="settings that travel with a directory or a session cannot vouch for code; put it in ~/.herarc",
        )


def nesting_depth(text: str) -> int:
    """How deep JSON ``text`` nests, counted without parsing it (so without recursion).

    One pass, remembering only whether it is inside a string and just after
    a backslash there: brackets inside strings do not count. Linear on
    purpose: a regular expression that skipped strings restarted at every
    unclosed quote, so 120 KB of ``\\"`` took a minute and 1 MiB an hour. For
    malformed text the count is only a bound on what a parser would reach
    (it stops in an unterminated string too), which is all a limit needs.
    """
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char == "[" or char == "{":
            depth += 1
            deepest = max(deepest, depth)
        elif char == "]" or char == "}":
            depth -= 1
    return deepest


def too_deep(source: str) -> HeraError:
    return HeraError(
        f"{source}: JSON nested deeper than {MAX_DEPTH} levels",
        hint="settings are a few levels deep at most, such as families.NAME.GROUP.KEY",
    )


def loads(text: str, source: str) -> Any:
    """``json.loads`` for a settings source, refusing nesting deeper than :data:`MAX_DEPTH` before parsing."""
    if nesting_depth(text) > MAX_DEPTH:
        raise too_deep(source)
    return json.loads(text)


def _check_variable(var: str, key: str, value: Any) -> None:
    """One ``HERA_*`` variable's value, blamed on the variable (and the key it sets)."""
    try:
        Settings.model_validate({key: value})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise HeraError(f"environment: {var} (key {where!r}): {first['msg']}") from None


def _refuse_foreign(path: Path, info: os.stat_result, what: str) -> None:
    """A file (or the link to it) another user made or may change cannot steer the caller's hera."""
    if not trusted_owner(info.st_uid):
        raise HeraError(
            f"{path}: {what} belongs to another user ({user_name(info.st_uid)}); hera takes settings only from files of yours",
            hint=(
                "HOME is someone else's home: run sudo with -H (not -E), or set HOME to your own"
                if path == home_file()
                else "remove it, or run hera in a directory of your own"
            ),
        )
    writers = None if stat.S_ISLNK(info.st_mode) else others_may_write(info)
    if writers:
        raise HeraError(f"{path}: settings file writable by {writers}", hint=f"chmod go-w {path}")


def _read_text(path: Path, *, owned: bool) -> str | None:
    """The text of a settings file, or None when there is none; ``owned``: it must be the caller's (or root's).

    Through :func:`hera.safe_open.open_regular`: a FIFO would hang hera and a
    device must not even be opened, so neither is; a huge file would fill
    memory. A link is followed (dotfile managers link ``~/.herarc``), but for
    an ``owned`` file only a link of the caller's or root's, and a file
    swapped for a link (or another file) while it is opened is refused.
    """
    def vet(link: Path, info: os.stat_result) -> None:
        _refuse_foreign(link, info, "the link")

    try:
        fd, info = open_regular(path, follow=True, vet_link=vet if owned else None)
    except FileNotFoundError:
        return None
    except Refused as exc:
        raise HeraError(f"{path}: {exc.strerror}", hint="settings are a JSON file; remove or rename this one") from None
    except OSError as exc:
        raise HeraError(f"{path}: cannot read settings ({exc.strerror or exc.__class__.__name__})") from None
    except ValueError:  # a NUL in the path
        raise HeraError(f"{path}: cannot read settings (NUL byte in the path)") from None
    try:
        if owned:
            _refuse_foreign(path, info, "the file")
        if info.st_size > MAX_FILE_BYTES:
            raise HeraError(f"{path}: {info.st_size:,} bytes is too large for a settings file (at most {MAX_FILE_BYTES:,})")
        data = os.read(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise HeraError(f"{path}: cannot read settings ({exc.strerror or exc.__class__.__name__})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:  # it grew after the fstat
        raise HeraError(f"{path}: too large for a settings file (at most {MAX_FILE_BYTES:,} bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise HeraError(f"{path}: cannot read settings (not UTF-8 text)") from None


def read_file(path: Path, *, owned: bool = False) -> Source | None:
    """A JSON settings file, or None when it does not exist; ``owned``: refuse another user's file."""
    text = _read_text(path, owned=owned)
    if text is None:
        return None
    try:
        values = loads(text, str(path)) if text.strip() else {}
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
        if key in HOME_ONLY:
            _refuse_home_only("environment", {key: raw}, label=f"{var} (key {{key!r}})")
        if key in ("params", "families"):
            try:
                values[key] = loads(raw, f"environment: {var}")
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


def trusted_family_dirs() -> list[Path]:
    """The family folders the user vouches for, from ``~/.herarc`` alone.

    Like git's ``safe.directory``: importing a folder runs its code, and a
    folder another user could change is not imported unless listed here.
    ``./hera.json`` may not list one: it lies in the working directory, the
    very place an attacker who planted a folder there can also write, so it
    would vouch for itself. ``HERA_*`` variables and flags may not either
    (see :data:`HOME_ONLY`). And ``~/.herarc`` itself must be the caller's
    (or root's): root run with another user's HOME (``sudo -E``) must not
    import what that user vouches for.
    """
    source = read_file(home_file(), owned=True)
    return [Path(p) for p in (source.values.get(TRUST_KEY) or [])] if source else []


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
    # Both files must be the caller's: with ``sudo -E`` HOME is still another user's home, and their
    # ~/.herarc would choose root's cache and, through trusted_family_dirs, code root imports.
    sources = [s for s in (read_file(home_file(), owned=True), read_file(work_file(workdir), owned=True)) if s is not None]
    for source in sources:
        if source.name != str(home_file()):
            _refuse_home_only(source.name, source.values)
    sources.append(read_environment(environ))
    given = {k: v for k, v in flags.items() if v is not None}
    _refuse_home_only("command line", given, label="option {key!r}")
    sources.append(Source(name="command line", values=_check("command line", given, key_label="option")))
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


def _shown(text: str, limit: int = 60) -> str:
    """``text`` for an error line: a pasted blob must not become a screenful."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_assignment(text: str) -> dict[str, Any]:
    """``--set hidden.width=48`` as a nested patch; the value is JSON, or a plain string.

    The key's parts and the value's nesting together may not exceed
    :data:`MAX_DEPTH`: either alone could build a patch that the recursive
    merge and validation below cannot walk.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise HeraError(f"--set {_shown(text)}: expected KEY=VALUE, for example --set hidden.width=48")
    if key.count(".") + 1 + nesting_depth(raw) > MAX_DEPTH:
        raise too_deep(f"--set {_shown(text)}")
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
