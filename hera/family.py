"""The family plugin API, and how installed and cloned families are found.

A family describes a model once: its layouts (named parameter sets), how to
build an instance's arrays from them, and what that costs. hera knows nothing
model-specific; it only talks to :class:`Family`. A family depends on this
module (and :mod:`hera.kernels` for its runtime) and nothing else of hera.

Families are found two ways, as the product README asks ("pip-install the repo
for a family, or git-clone to the working directory"):

* installed distributions exposing an entry point in group ``hera.families``;
* folders in the working directory (or the working directory itself) whose
  ``pyproject.toml`` declares that entry point, imported from the folder.

A family that fails to import or to describe itself is reported by name and
never hides the others. Family modules must import cheaply: ``hera families``
and ``hera layouts`` import every family, and may not pull in Taichi.

Importing a folder runs its code as whoever runs hera, so a folder is imported
only when no other user could have written or could change what would run:
the folder, every directory above it, its ``pyproject.toml``, the files
directly in its import roots and the whole of each declared top package must
belong to the caller (or root) and be writable by no one else (a directory
above may be world-writable if it is sticky, as ``/tmp`` is; a group that is
the owner's own private group does not count as someone else). Links count by
their owner and by where they lead. Root is not exempt: root importing
another user's code is exactly the attack. A user who does trust such a
folder names it in ``trusted_family_dirs`` in ``~/.herarc``, as git's
``safe.directory``; see :mod:`hera.config` for why no other source may.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import stat
import sys
import tomllib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from hera.errors import HeraError, NotFound, did_you_mean, nearest
from hera.ownership import chain_problem, node_problem
from hera.safe_open import open_regular

if TYPE_CHECKING:
    import numpy as np

    from hera.instance import Header
    from hera.runtime import Runtime

ENTRY_POINT_GROUP = "hera.families"

#: How to trust a folder hera refused, for the error line and ``hera families``.
TRUST_HINT = "if you trust every user who can change it, add its absolute path to trusted_family_dirs in ~/.herarc"

#: Largest pyproject.toml read (even an untrusted one is read, to name what it declares).
MAX_PYPROJECT_BYTES = 1 << 20


class Params(BaseModel):
    """Base for a family's layout parameters: strict, so typos are caught."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceEstimate(BaseModel):
    """What an instance of a layout needs, computed without building it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    neurons: int
    synapses: int
    device_bytes: int
    host_bytes: int
    file_bytes: int


@dataclass
class Built:
    """A freshly built brain: its arrays, and a summary for the readable header."""

    arrays: dict[str, np.ndarray]
    summary: dict[str, Any] = field(default_factory=dict)


class Family(ABC):
    """What a family implements. Subclass it and register the class as an entry point."""

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    #: The layout parameter model (a :class:`Params` subclass).
    params_model: ClassVar[type[Params]]
    #: Named layouts: partial parameter dicts over the model's defaults. Must include "example".
    layouts: ClassVar[Mapping[str, Mapping[str, Any]]]
    #: The parameters ``hera grow`` may change, as dotted keys (``hidden.width``): sizes, never
    #: dynamics. None by default, so a family opts in to each; grow refuses any other key.
    growable: ClassVar[frozenset[str]] = frozenset()

    def seconds_per_iteration(self, params: Params) -> float | None:
        """Simulated seconds one iteration stands for, if the family has a time step; None if it has none.

        What a real-time pace (``--pace 1x``) is measured by, known from the
        parameters alone so that ``build --pace`` is checked before anything
        is written; the runtime carries the same figure
        (:attr:`hera.runtime.Runtime.seconds_per_iteration`) for the agent.
        """
        return None

    def resolve(self, layout: str, overrides: Sequence[tuple[str, Mapping[str, Any]]] = ()) -> Params:
        """A layout's parameters with the user's overrides applied, validated.

        ``overrides`` are (source, partial params) pairs in rising precedence;
        an invalid value is blamed on the source that last set it.
        """
        if layout not in self.layouts:
            raise NotFound(
                f"family {self.name!r} has no layout {layout!r}",
                hint=did_you_mean(layout, list(self.layouts)),
            )
        merged: dict[str, Any] = deep_merge({}, self.layouts[layout])
        for _, patch in overrides:
            merged = deep_merge(merged, patch)
        try:
            return self.params_model.model_validate(merged)
        except ValidationError as exc:
            raise params_error(self, exc, layout, overrides) from None

    def new_header(
        self,
        layout: str,
        params: Params,
        seed: int,
        *,
        uuid: str | None = None,
        callsign: str | None = None,
        summary: dict[str, Any] | None = None,
    ) -> Header:
        """The header of a new, dead instance of this family (build, tests and scripts share it)."""
        import uuid as uuidlib

        from hera.cache import callsigns
        from hera.instance import FamilyRef, Header, now

        uuid = uuid or str(uuidlib.uuid4())
        return Header(
            uuid=uuid,
            callsign=callsign or callsigns.suggest(uuid),
            family=FamilyRef(name=self.name, version=self.version),
            layout=layout,
            params=params.model_dump(mode="json"),
            seed=seed,
            created=now(),
            summary=summary or {},
        )

    @abstractmethod
    def build(self, params: Params, seed: int) -> Built:
        """Create the arrays of a new instance: static structure and initial weights, no dynamic state."""

    @abstractmethod
    def estimate(self, params: Params) -> ResourceEstimate:
        """Honest resource needs of a layout, from its parameters alone (no numpy, no Taichi)."""

    def runtime(self, header: Header, arrays: Mapping[str, np.ndarray], arch: str) -> Runtime:
        """Load an instance onto the device (Taichi is already initialised for ``arch``).

        ``arrays`` is what :meth:`build` made (no dynamic state: start fresh)
        or what :meth:`hera.runtime.Runtime.export_state` gave (resume exactly).
        In an agent it is a read-only mapping that decodes each array on lookup
        and keeps nothing (so host memory holds one array at a time): upload
        each array once; :func:`hera.runtime.check_arrays` reads only their
        descriptions.
        """
        raise NotImplementedError(f"family {self.name!r} has no runtime yet")

    def grow(
        self, header: Header, arrays: Mapping[str, np.ndarray], params: Params
    ) -> tuple[dict[str, Any], Iterable[tuple[str, np.ndarray]]]:
        """Enlarge a downed instance to ``params``, keeping every existing weight and state value.

        hera calls it only when ``params`` differ from the header's in keys
        of :attr:`growable` alone. Raise :class:`hera.errors.HeraError` for a
        change that would shrink anything, here, before returning.

        Built for brains larger than memory, so both sides go one array at a
        time. ``arrays`` is the old brain read lazily: looking an array up
        decodes it then (and nothing keeps it, so look each up once, when it
        is needed); :func:`array_specs` gives every array's dtype and shape
        without decoding any, and :func:`row_blocks` an array's rows a block
        at a time. Returns the new summary and the grown arrays as an
        iterable of ``(name, array)`` pairs, best a generator that makes each
        only when asked: hera writes each array as it comes and then frees
        its memory (so never yield an array you keep, or a view of one), and
        growing needs about the largest grown array, not the brain. Tests may
        pass a plain dict of arrays and take ``dict(pairs)``.
        """
        raise HeraError(f"family {self.name!r} does not support grow")


@dataclass(frozen=True)
class ArraySpec:
    """An array's dtype and shape without its data (what :func:`hera.runtime.check_arrays` looks at)."""

    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)


def array_specs(arrays: Mapping[str, Any]) -> Mapping[str, Any]:
    """Every array's dtype and shape, without decoding any where ``arrays`` is read lazily.

    A lazy source (the brain ``grow`` is given) says them from its file's
    entries (its ``spec(name)``); a plain dict of arrays is its own answer.
    """
    spec = getattr(arrays, "spec", None)
    if spec is None:
        return arrays
    return {name: spec(name) for name in arrays}


#: Rows per block in :func:`row_blocks`: about this many bytes of them.
BLOCK_BYTES = 4 << 20


def row_blocks(arrays: Mapping[str, Any], name: str, block_bytes: int = BLOCK_BYTES) -> Iterator[tuple[int, np.ndarray]]:
    """Array ``name`` a block of whole rows (its first axis) at a time: ``(first row, block)`` pairs.

    So a family can copy an old array into a grown one row range by row
    range with a few MiB in hand, never the whole old array: from a lazy
    source the rows are assembled from its verified pieces (``pieces(name)``,
    1-d, in the array's own dtype, C order); a plain array is sliced. A
    block is the caller's to keep. A 0-d array is one block of its one value.
    """
    import math

    import numpy as np

    pieces = getattr(arrays, "pieces", None)
    if pieces is None:
        whole = arrays[name]
        if whole.ndim == 0:
            yield 0, whole.copy()
            return
        step = max(1, block_bytes // max(1, whole[:1].nbytes))
        for start in range(0, whole.shape[0], step):
            yield start, whole[start : start + step]
        return
    spec = arrays.spec(name)  # type: ignore[attr-defined]
    if not spec.shape:
        yield 0, np.concatenate([*pieces(name), np.zeros(0, spec.dtype)]).reshape(())
        return
    rows, rest = spec.shape[0], spec.shape[1:]
    width = math.prod(rest)
    step = max(1, block_bytes // max(1, width * spec.dtype.itemsize))
    start, filled = 0, 0
    block = np.empty(min(step, rows) * width, spec.dtype)
    for piece in pieces(name):
        while piece.size:
            take = min(piece.size, block.size - filled)
            block[filled : filled + take] = piece[:take]
            filled, piece = filled + take, piece[take:]
            if filled == block.size:
                yield start, block.reshape(-1, *rest)
                start += block.size // width if width else 0
                filled = 0
                block = np.empty(min(step, rows - start) * width, spec.dtype)
    if width == 0:  # rows of nothing: no piece ever came
        for first in range(0, rows, step):
            yield first, np.empty((min(step, rows - first), *rest), spec.dtype)


def changed_keys(before: Mapping[str, Any], after: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys whose values differ between two parameter dicts (nested objects key by key)."""
    changed = []
    for key in sorted(set(before) | set(after), key=str):
        was, now = before.get(key), after.get(key)
        dotted = f"{prefix}{key}"
        if isinstance(was, Mapping) and isinstance(now, Mapping):
            changed += changed_keys(was, now, f"{dotted}.")
        elif was != now:
            changed.append(dotted)
    return changed


def deep_merge(base: dict[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """``patch`` over ``base``, merging nested objects key by key."""
    result = dict(base)
    for key, value in patch.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(dict(result[key]), value)
        else:
            result[key] = value
    return result


def params_error(
    family: Family, exc: ValidationError, layout: str, overrides: Sequence[tuple[str, Mapping[str, Any]]]
) -> HeraError:
    """One line naming the parameter, who set it, and (for a typo) the right name."""
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    dotted = ".".join(loc)
    source = f"layout {family.name}/{layout}"
    for name, patch in reversed(overrides):
        node: Any = patch
        for part in loc:
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None:
            source = name
            break
    if first["type"] == "extra_forbidden":
        model: Any = family.params_model
        for part in loc[:-1]:
            annotation = model.model_fields[part].annotation if part in getattr(model, "model_fields", {}) else None
            model = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
        valid = list(model.model_fields) if model is not None else []
        guess = nearest(loc[-1], valid)
        hint = f"did you mean {guess!r}?" if guess else f"valid parameters: {', '.join(valid)}"
        return HeraError(f"{source}: parameter {dotted!r} is not a parameter of family {family.name!r}", hint=hint)
    return HeraError(f"{source}: parameter {dotted!r}: {first['msg']}")


@dataclass
class FamilyEntry:
    """A discovered family, or the reason it could not be loaded (or was not trusted)."""

    name: str
    source: str
    family: Family | None = None
    error: str | None = None
    #: False for a folder hera did not import because someone else could have planted it.
    trusted: bool = True


def _load(target: Any, name: str) -> Family:
    obj = target() if isinstance(target, type) else target
    if not isinstance(obj, Family):
        raise TypeError(f"entry point {name!r} is not a hera.family.Family")
    if obj.name != name:
        raise TypeError(f"entry point {name!r} loads a family named {obj.name!r}")
    if "example" not in obj.layouts:
        raise TypeError("it defines no 'example' layout")
    return obj


def _read_small(path: Path, limit: int) -> bytes | None:
    """A regular file's bytes, or None: never opens anything else, never reads past ``limit``.

    Used on a folder's ``pyproject.toml`` before any trust check, so on a
    file another user may have planted: a link is not followed (its target,
    say ``/dev/watchdog``, would be theirs to choose; a link there is checked
    only later, by :func:`folder_problem`), and a FIFO or device is refused
    before it is opened (see :mod:`hera.safe_open`).
    """
    try:
        fd, info = open_regular(path, follow=False)
    except (OSError, ValueError):
        return None
    try:
        return None if info.st_size > limit else os.read(fd, limit + 1)
    except OSError:
        return None
    finally:
        os.close(fd)


def _folder_entry_points(folder: Path) -> dict[str, str]:
    """The families a folder's pyproject.toml declares; reading it runs nothing."""
    data = _read_small(folder / "pyproject.toml", MAX_PYPROJECT_BYTES)
    if data is None:
        return {}
    try:
        parsed = tomllib.loads(data.decode("utf-8"))
        found = parsed.get("project", {}).get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    except Exception:  # noqa: BLE001 -- malformed TOML, or nested deep enough for a RecursionError
        return {}
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


# -- whether a folder may be imported ----------------------------------------------------------


def _entry_problem(path: Path) -> str | None:
    """One file or directory inside a folder: its own owner and mode, and for a link, where it leads.

    The folder's own chain was checked already; only a link here leads
    somewhere whose chain must be checked too.
    """
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if stat.S_ISLNK(info.st_mode):
        return chain_problem(path)
    return node_problem(path, info, sticky_ok=False)


def _tree_problem(top: Path) -> str | None:
    """Everything under a package that an import could load (its submodules, their bytecode)."""
    real = Path(os.path.realpath(top))
    for directory, subdirectories, files in os.walk(real, onerror=None):
        for name in [*subdirectories, *files]:
            problem = _entry_problem(Path(directory) / name)
            if problem:
                return problem
    return None


def _import_roots(folder: Path) -> list[Path]:
    """Where :func:`_import_from_folder` looks for modules, in its order."""
    return [p for p in (folder / "src", folder) if p.is_dir()]


def folder_problem(folder: Path, targets: list[str]) -> str | None:
    """Why importing ``targets`` from ``folder`` could run code another user wrote, or None when it could not.

    Checked: the folder and every directory above it; each import root and
    every entry directly in it (``pyproject.toml``, sibling modules, and any
    package an import may reach); and the whole of each declared top package.
    """
    problem = chain_problem(folder)
    if problem:
        return problem
    for root in _import_roots(folder):
        try:
            entries = sorted(root.iterdir())
        except OSError as exc:
            return f"{root}: {exc.strerror}"
        for path in [root, *entries]:
            if path.name.startswith(".") and path != root:
                continue  # not importable (".git" and the like)
            problem = _entry_problem(path)
            if problem:
                return problem
        for target in targets:
            top = root / target.partition(":")[0].split(".")[0]
            if top.is_dir():
                problem = _tree_problem(top)
                if problem:
                    return problem
    return None


def _listed(folder: Path, trusted: list[Path]) -> bool:
    """Whether the user vouched for ``folder`` (compared as resolved paths, so a link cannot pose as it)."""
    real = os.path.realpath(folder)
    return any(os.path.realpath(path) == real for path in trusted)


def _import_from_folder(folder: Path, target: str) -> Any:
    module_name, _, attr = target.partition(":")
    roots = _import_roots(folder)
    top = module_name.split(".")[0]
    for root in roots:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    finally:
        for root in roots:
            sys.path.remove(str(root))
    origin = Path(getattr(sys.modules[top], "__file__", "") or "").resolve()
    if not any(origin.is_relative_to(root.resolve()) for root in roots):
        raise ImportError(f"module {top!r} is already imported from {origin.parent}, shadowing this folder")
    obj: Any = module
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _describe(exc: BaseException) -> str:
    """Why a family failed to load, on one line (it goes into a table and an error line)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class Survey:
    """What :func:`survey` found: the families this user can use, and the folders it would not import."""

    entries: dict[str, FamilyEntry]
    untrusted: list[FamilyEntry]

    def get(self, name: str) -> Family:
        """The family called ``name``, or one line saying why there is none to use."""
        entry = self.entries.get(name)
        if entry is None:
            refused = next((u for u in self.untrusted if u.name == name), None)
            if refused is not None:
                raise HeraError(f"family {name!r} ({refused.source}) is {refused.error}", hint=TRUST_HINT)
            raise NotFound(f"no family named {name!r} is installed", hint=did_you_mean(name, list(self.entries)))
        if entry.family is None:
            raise HeraError(f"family {name!r} ({entry.source}) is broken: {entry.error}")
        return entry.family


def _folders(workdir: Path) -> list[Path]:
    """The working directory itself first, then its folders by name."""
    folders = [workdir]
    try:
        folders += sorted(p for p in workdir.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        pass
    return folders


def survey(workdir: Path | None = None, trusted: list[Path] | None = None) -> Survey:
    """Every family this user can use, by name, and every folder family refused; folders win over installed ones.

    Folders are loaded first, and an installed family that a folder provides
    is never imported: a clone of an installed family usually has the same
    module name, which the installed copy would already occupy. Among
    folders, the working directory itself comes first, then its folders by
    name; the first to declare a family provides it. A folder that fails
    :func:`folder_problem` provides nothing (unless listed in ``trusted``,
    by default ``trusted_family_dirs`` of ``~/.herarc``) and its families are
    listed as untrusted instead.
    """
    found: dict[str, FamilyEntry] = {}
    untrusted: list[FamilyEntry] = []
    workdir = Path.cwd() if workdir is None else workdir
    for folder in _folders(workdir):
        declared = _folder_entry_points(folder)
        if not declared:
            continue
        if trusted is None:
            from hera.config import trusted_family_dirs  # here: hera.config imports this module

            trusted = trusted_family_dirs()
        problem = None if _listed(folder, trusted) else folder_problem(folder, list(declared.values()))
        for name, target in declared.items():
            if problem is not None:
                untrusted.append(FamilyEntry(name, f"folder {folder}", error=f"not trusted: {problem}", trusted=False))
                continue
            if name in found:
                continue
            entry = FamilyEntry(name, f"folder {folder}")
            try:
                entry.family = _load(_import_from_folder(folder, target), name)
            except Exception as exc:  # a broken family must not hide the others
                entry.error = _describe(exc)
            found[name] = entry
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        entry = FamilyEntry(ep.name, f"installed ({dist})")
        try:
            entry.family = _load(ep.load(), ep.name)
        except Exception as exc:
            entry.error = _describe(exc)
        found[ep.name] = entry
    return Survey(found, untrusted)


def discover(workdir: Path | None = None) -> dict[str, FamilyEntry]:
    """Every family this user can use, by name (see :func:`survey`, which also tells what it refused)."""
    return survey(workdir).entries


def get(name: str, workdir: Path | None = None) -> Family:
    """The family called ``name``, or an error that says what is installed (or why a folder was refused)."""
    return survey(workdir).get(name)
