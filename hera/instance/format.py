"""The instance document: one JSON file that is the whole agent.

Layout of a file hera writes (any valid JSON with the same content reads too)::

    {"format": "hera-instance", "format_version": 3,
     "header": {...readable: uuid, callsign, family, layout, params, iteration...},
     "arrays": {"name": {"dtype": "<f4", "shape": [..], "encoding": "base64",
                         "data": "...", "crc32": 123}, ...}}

The header comes first so listings read a page, not a brain. Reads validate
every field and fail with one line naming the file and the field; nothing read
is ever executed. Writes are atomic (see :mod:`hera.instance.atomic`).

Format 2 differs from 1 only in the arrays' checksums: each covers the
array's name, dtype and shape too (see :mod:`hera.instance.codec`), and every entry
has one. Format 3 adds the ``zstd`` encoding (compressed frames, where it
pays). All three are read; only 3 is written, so an agent cached in an older
format moves to 3 on its next save (or install, copy: see :func:`transcribe`).

Only regular files are opened (:mod:`hera.safe_open`): a FIFO, a device or a
directory named ``x.json`` (in the cache, say) is one error line naming it, and
is refused before any open, so a device's driver never runs.

This module imports numpy only when arrays are actually touched, so header-only
commands (``agents``, ``families``) stay fast.
"""

from __future__ import annotations

import functools
import json
import mmap
import os
import stat
import uuid as uuidlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hera import safe_open
from hera.errors import HeraError
from hera.instance.atomic import atomic_write
from hera.instance.scanner import ScanError, Scanner, label, line_col
from hera.safe_open import Refused

#: Told how many raw array bytes were just written, decoded or verified (from any thread): progress.
OnBytes = Callable[[int], None] | None

if TYPE_CHECKING:
    import numpy as np

    from hera.instance.codec import ArrayEntry

FORMAT = "hera-instance"
FORMAT_VERSION = 3
#: Every version this hera reads (see the module's docstring for how they differ).
READ_VERSIONS = (1, 2, 3)
CALLSIGN_PATTERN = r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$"


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


class FamilyRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=64)
    version: str = Field(min_length=1, max_length=64)


class Installation(BaseModel):
    """Who installed the agent, where, and when (set by ``install``)."""

    model_config = ConfigDict(extra="forbid")
    owner: str = Field(max_length=256)
    scope: str = Field(pattern=r"^(user|system)$")
    installed_at: datetime


class Header(BaseModel):
    """Everything about an instance except its arrays."""

    model_config = ConfigDict(extra="forbid")
    uuid: str
    callsign: str = Field(pattern=CALLSIGN_PATTERN, max_length=64)
    family: FamilyRef
    layout: str = Field(min_length=1, max_length=64)
    params: dict[str, Any]
    # Strict: a hand-edited "12" or "yes" is an error, not quietly a number or a truth.
    seed: int = Field(ge=0, lt=2**63, strict=True)
    created: datetime
    iteration: int = Field(default=0, ge=0, strict=True)
    dynamic: bool = Field(default=False, strict=True)
    summary: dict[str, Any] = Field(default_factory=dict)
    installed: Installation | None = None
    last_up: datetime | None = None
    device: str | None = Field(default=None, max_length=128)
    lineage: list[str] = Field(default_factory=list)
    #: How fast the agent may iterate (:mod:`hera.pace`): set at build, up or live, saved with every save.
    pace: str | None = Field(default=None, max_length=64)

    @field_validator("pace")
    @classmethod
    def _known_pace(cls, value: str | None) -> str | None:
        from hera.pace import parse

        return None if value is None else parse(value).text

    @field_validator("uuid")
    @classmethod
    def _canonical_uuid(cls, value: str) -> str:
        try:
            return str(uuidlib.UUID(value))
        except ValueError:
            raise ValueError("not a UUID") from None


class InstanceFileError(HeraError):
    """An instance file that cannot be read as one; the message names file and field."""


class InstanceTooLarge(HeraError):
    """A valid instance this machine has not the memory to load.

    Not an :class:`InstanceFileError`: the file is not damaged, so an agent
    must not fall back to its previous save because of it.
    """


def _fail(path: Path, where: str, what: str) -> InstanceFileError:
    return InstanceFileError(
        f"{path}: {label(where, 200)}: {what}",
        hint="the file is not a valid hera instance; rebuild it or restore a copy",
    )


def _too_large(path: Path, message: str) -> InstanceTooLarge:
    return InstanceTooLarge(f"{path}: {message}", hint="load it on a machine with more memory")


def _refuse_anothers_link(path: Path, link: os.stat_result) -> None:
    """Follow a link only if the caller (or root) made it: another user's link would choose what hera reads.

    Root listing a user's cache (``agents --user U``, ``--all``) meets links U
    made; followed, root would read for U whatever root may read (root's own
    agents, a device). A link of one's own, such as a FILE named on the
    command line through a link one made, is followed.
    """
    from hera.ownership import trusted_owner, user_name

    if not trusted_owner(link.st_uid):
        raise Refused(path, f"a symbolic link made by {user_name(link.st_uid)}; hera follows only links of yours or root's")


def open_regular(path: Path, *, follow: bool = True) -> int:
    """A read-only descriptor of ``path``, which must be a regular file; nothing else is ever opened.

    See :mod:`hera.safe_open`: a FIFO named like an agent used to hang every
    listing, and a link to a device in another user's cache made root open
    the device. ``follow``: whether a link at ``path`` is followed at all
    (then only one of the caller's or root's, see
    :func:`_refuse_anothers_link`); False for files hera itself writes into
    a cache, which are never links.
    """
    try:
        fd, _ = safe_open.open_regular(path, follow=follow, vet_link=_refuse_anothers_link)
    except FileNotFoundError:
        raise HeraError(f"{path}: no such file") from None
    except PermissionError:
        raise HeraError(f"{path}: permission denied") from None
    except safe_open.NotRegular as exc:
        raise HeraError(f"{path}: {exc.strerror}; not an instance file") from None
    except Refused as exc:
        raise HeraError(f"{path}: {exc.strerror}") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise HeraError(f"{path}: cannot open it: {getattr(exc, 'strerror', None) or exc}") from None
    return fd


def _validation_message(exc: ValidationError, prefix: str) -> tuple[str, str]:
    first = exc.errors()[0]
    loc = ".".join(str(part) for part in (prefix, *first["loc"]))
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return loc, first["msg"] + more


@dataclass
class Instance:
    """An instance in memory: its header and the arrays that were loaded."""

    header: Header
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    def save(self, path: Path, *, mode: int = 0o644, overwrite: bool = True, on_bytes: OnBytes = None) -> None:
        save(path, self.header, self.arrays, mode=mode, overwrite=overwrite, on_bytes=on_bytes)


def save(
    path: Path,
    header: Header,
    arrays: Mapping[str, np.ndarray],
    *,
    mode: int = 0o644,
    overwrite: bool = True,
    keep_previous: bool = False,
    on_bytes: OnBytes = None,
) -> None:
    """Write an instance atomically, streaming arrays (never one big string).

    With ``keep_previous`` (the cache's saves of a live agent) the new file is
    read back and every checksum verified before it replaces the old one, and
    the old one stays beside it as ``<file>.prev``: see :func:`load_or_previous`.
    ``on_bytes``: told the raw array bytes written as they are (progress), and
    with ``keep_previous`` those read back too (so twice the arrays' bytes).
    """
    from hera.instance.codec import _write_all as write_all, write_array

    verify = functools.partial(verify_file, on_bytes=on_bytes) if keep_previous else None
    with atomic_write(Path(path), mode, overwrite=overwrite, keep_previous=keep_previous, verify=verify) as out:
        write_all(out, _document_head(header))
        for index, (name, array) in enumerate(arrays.items()):
            write_all(out, _entry_head(index, name))
            write_array(out, array, name, compress=True, on_bytes=on_bytes)
        write_all(out, b"\n}}\n")


def _document_head(header: Header) -> bytes:
    """Everything before the first array: the header first, so listings read a page."""
    head = json.dumps(header.model_dump(mode="json", exclude_none=True), indent=2)
    return (
        f'{{"format": "{FORMAT}", "format_version": {FORMAT_VERSION},\n'
        f'"header": {head},\n"arrays": {{'.encode()
    )


def _entry_head(index: int, name: str) -> bytes:
    return (",\n" if index else "\n").encode() + json.dumps(name).encode() + b": "


def transcribe(
    source: Path | int,
    target: Path,
    header: Header,
    *,
    mode: int = 0o600,
    overwrite: bool = False,
    keep_previous: bool = False,
    follow: bool = True,
    on_bytes: OnBytes = None,
) -> None:
    """Write ``target`` atomically: ``header`` and the arrays of ``source``, every checksum verified as it passes.

    What install, uninstall and copy do instead of load and save: they change
    the header, never a weight, so no array is decoded into memory; each is
    read, checked and written a few chunks at a time (peak memory bounded
    whatever the brain's size; the source's mapped pages are let go as they
    pass). Data already valid in the current format is copied through as
    text; a format-1 entry's checksum is sealed anew (see
    :mod:`hera.instance.codec`). ``source`` may be an open descriptor (root
    hands a child the file the user may not open; it stays the caller's to
    close). Damage anywhere leaves nothing at ``target``.
    """
    from hera.instance.codec import ArrayError, TooLarge, _write_all as write_all

    with InstanceFile(source, follow=follow) as opened:
        verify = verify_file if keep_previous else None
        with atomic_write(Path(target), mode, overwrite=overwrite, keep_previous=keep_previous, verify=verify) as out:
            write_all(out, _document_head(header))
            for index, (name, entry) in enumerate(opened.entries.items()):
                write_all(out, _entry_head(index, name))
                try:
                    entry.transcribe(out, opened._fd, opened._map, on_bytes)
                except TooLarge as exc:
                    raise _too_large(opened.path, str(exc)) from None
                except ArrayError as exc:
                    raise _fail(opened.path, *_where_what(str(exc))) from None
            write_all(out, b"\n}}\n")


def _where_what(message: str) -> tuple[str, str]:
    where, _, what = message.partition(": ")
    return (where, what) if what else ("arrays", where)


class InstanceFile:
    """An open instance file: the header parsed, arrays decoded on request.

    The file is memory-mapped; array data is decoded chunk by chunk from the
    mapping into its destination, so loading needs about the arrays' own size
    in memory, not the document's.
    """

    def __init__(self, path: Path | int, *, header_only: bool = False, follow: bool = True) -> None:
        """Open and parse ``path``; ``follow``: whether a link there may be followed (see :func:`open_regular`).

        ``path`` may be an open descriptor instead (install --user: root opens
        what the user may not, a child reads it); it is duplicated, and stays
        the caller's to close.
        """
        self.entries: dict[str, ArrayEntry] = {}
        self._map: mmap.mmap | None = None
        self._fd = -1
        if isinstance(path, int):
            fd = self._fd = os.dup(path)
            self.path = _named(fd)
        else:
            self.path = Path(path)
            fd = self._fd = open_regular(self.path, follow=follow)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise HeraError(f"{self.path}: not a regular file; not an instance file")
            size = os.fstat(fd).st_size
            if size == 0:
                raise _fail(self.path, "file", "empty")
            try:
                self._map = mmap.mmap(fd, size, prot=mmap.PROT_READ)
            except OSError as exc:
                raise HeraError(f"{self.path}: cannot read it: {exc.strerror or exc}") from None
            self._parse(header_only)
        except BaseException:
            self.close()
            raise

    def _parse(self, header_only: bool) -> None:
        assert self._map is not None
        hint = None
        if not header_only:
            from hera.instance.codec import data_length_hint

            hint = data_length_hint
        scanner = Scanner(self._map, length_hint=hint)
        wanted = {"format", "format_version", "header"} | (set() if header_only else {"arrays"})
        try:
            if header_only:
                top = scanner.top_level(wanted)
            else:
                top = scanner.document()
                if not isinstance(top, dict):
                    raise _fail(self.path, "document", "expected a JSON object")
        except ScanError as exc:
            line, col = line_col(self._map, exc.pos)
            raise _fail(self.path, f"line {line} column {col}", f"malformed JSON ({exc.message})") from None
        if top.get("format") != FORMAT:
            raise _fail(self.path, "format", f"expected {FORMAT!r}, found {top.get('format')!r}")
        version = top.get("format_version")
        if type(version) is not int or version not in READ_VERSIONS:  # not `in`: True == 1 and 2.0 == 2
            raise InstanceFileError(
                f"{self.path}: format_version: this hera reads versions "
                f"{', '.join(map(str, READ_VERSIONS))}, the file has {version!r:.40}",
                hint="upgrade hera to read newer files",
            )
        if not header_only:
            unknown = top.keys() - {"format", "format_version", "header", "arrays"}
            if unknown:
                raise _fail(self.path, sorted(unknown)[0], "unknown top-level field")
        if "header" not in top:
            raise _fail(self.path, "header", "missing")
        try:
            self.header = Header.model_validate(top["header"])
        except ValidationError as exc:
            raise _fail(self.path, *_validation_message(exc, "header")) from None
        if header_only:
            return
        from hera.instance.codec import MAX_ARRAY_BYTES, ArrayEntry, ArrayError
        from hera.table import human_bytes

        raw_arrays = top.get("arrays")
        if not isinstance(raw_arrays, dict):
            raise _fail(self.path, "arrays", "expected an object of named arrays")
        named, compressed = version >= 2, version >= 3
        try:
            self.entries = {
                name: ArrayEntry.parse(name, raw, named=named, compressed=compressed) for name, raw in raw_arrays.items()
            }
        except ArrayError as exc:
            raise _fail(self.path, *_where_what(str(exc))) from None
        if self.nbytes > MAX_ARRAY_BYTES:
            raise _fail(self.path, "arrays", f"claim {human_bytes(self.nbytes)} together, more than the "
                        f"{human_bytes(MAX_ARRAY_BYTES)} an instance may hold (the file was damaged or edited)")

    @property
    def nbytes(self) -> int:
        """What all arrays take in memory once decoded (exact; fills at their full size)."""
        return sum(entry.nbytes for entry in self.entries.values())

    def _entry(self, name: str) -> ArrayEntry:
        if name not in self.entries:
            raise _fail(self.path, f"arrays.{name}", "missing")
        return self.entries[name]

    def array(self, name: str, on_bytes: OnBytes = None) -> np.ndarray:
        """One array decoded and verified (refused before allocating if it could never fit)."""
        from hera.instance.codec import ArrayError, TooLarge

        entry = self._entry(name)
        try:
            return entry.decode(self._fd, self._map, on_bytes)
        except TooLarge as exc:
            raise _too_large(self.path, str(exc)) from None
        except ArrayError as exc:
            raise _fail(self.path, *_where_what(str(exc))) from None

    def pieces(self, name: str, on_bytes: OnBytes = None) -> Iterator[np.ndarray]:
        """The array's elements in C order, as read-only 1-d pieces in its dtype of at most a chunk (1.5 MiB).

        For work that looks at every element once (``inspect``'s statistics,
        ``grow``'s row-by-row copy) without the whole array in memory. The
        checksum is checked as they pass: a mismatch raises
        :class:`InstanceFileError` after the last piece at the latest, so
        whatever was made of the pieces must be dropped then.
        """
        from hera.instance.codec import ArrayError

        entry = self._entry(name)
        try:
            yield from entry.pieces(self._fd, self._map, on_bytes)
        except ArrayError as exc:
            raise _fail(self.path, *_where_what(str(exc))) from None

    def lazy_arrays(
        self, on_bytes: OnBytes = None, *, names: list[str] | None = None, before_each: Callable[[], None] | None = None
    ) -> LazyArrays:
        """The arrays as a read-only mapping that decodes each when looked up, and keeps none.

        The agent hands it to a family's runtime, which uploads each array and
        drops it: peak memory is the device state and the largest array, not
        twice the brain. Each lookup decodes again (and is refused, before it
        allocates, if that array could never fit); valid while the file is open.
        ``names``: only these (default: all); ``before_each``: called before
        each lookup decodes (the agent frees the array uploaded before it).
        Its ``describe`` gives an array's dtype and shape without decoding, so
        a family's checks (:func:`hera.runtime.check_arrays`) cost nothing.
        """
        return LazyArrays(self, list(self.entries) if names is None else names, on_bytes, before_each)

    def verify(self, on_bytes: OnBytes = None) -> None:
        """Check every field and checksum, keeping no array: memory of a few chunks whatever the size."""
        from hera.instance.codec import ArrayError

        for entry in self.entries.values():
            try:
                entry.verify(self._fd, self._map, on_bytes)
            except ArrayError as exc:
                raise _fail(self.path, *_where_what(str(exc))) from None

    def fill_value(self, name: str) -> np.ndarray:
        """A fill array's one value, checksum verified, without allocating the array (for ``inspect``)."""
        from hera.instance.codec import ArrayError

        try:
            return self.entries[name].fill_value(self._map)
        except ArrayError as exc:
            raise _fail(self.path, *_where_what(str(exc))) from None

    def load(self, on_bytes: OnBytes = None) -> Instance:
        from hera.instance.codec import TooLarge, check_memory

        try:  # refused before the first is decoded: the largest by name, else all of them together
            for name, entry in self.entries.items():
                check_memory(f"arrays.{name}", entry.nbytes)
            check_memory("arrays (all together)", self.nbytes)
        except TooLarge as exc:
            raise _too_large(self.path, str(exc)) from None
        return Instance(self.header, {name: self.array(name, on_bytes) for name in self.entries})

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> InstanceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LazyArrays(Mapping[str, "np.ndarray"]):
    """See :meth:`InstanceFile.lazy_arrays`."""

    def __init__(
        self, opened: InstanceFile, names: list[str], on_bytes: OnBytes, before_each: Callable[[], None] | None
    ) -> None:
        self.opened = opened
        self.names = names
        #: Where decoding progress goes; may be set before the first lookup (the agent's load phase).
        self.on_bytes = on_bytes
        self._before_each = before_each

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self.names:
            raise KeyError(name)
        if self._before_each is not None:
            self._before_each()
        return self.opened.array(name, self.on_bytes)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def describe(self, name: str) -> tuple[Any, tuple[int, ...]]:
        """``name``'s dtype and shape from the file's entry, without decoding it (KeyError if absent)."""
        if name not in self.names:
            raise KeyError(name)
        entry = self.opened.entries[name]
        return entry.dtype, tuple(entry.shape)

    @property
    def nbytes(self) -> int:
        """What these arrays take once decoded: the total of a load's progress."""
        return sum(self.opened.entries[name].nbytes for name in self.names)


def previous_warning(path: Path, damaged: InstanceFileError, previous: Header) -> str:
    """The one warning a fallback to the previous good save gives (a whole load's or the agent's lazy one)."""
    from hera.instance.atomic import previous_path

    return (
        f"{path} is damaged ({damaged.message}); using the previous good copy "
        f"from iteration {previous.iteration} ({previous_path(Path(path))})"
    )


def _named(fd: int) -> Path:
    """What an inherited descriptor is open on, for error lines (its path where /proc says, else the number)."""
    try:
        return Path(os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return Path(f"<descriptor {fd}>")


_PREFIXES = tuple(f'{{"format": "{FORMAT}", "format_version": {v},\n"header": '.encode() for v in READ_VERSIONS)
_HEAD_BYTES = 64 * 1024


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Duplicate("duplicate key")
    return result


def _not_json(constant: str) -> Any:
    """Python's json reads NaN and Infinity, which JSON (and the strict reader) do not."""
    raise ValueError(f"{constant} is not JSON")


def _fast_header(path: Path, follow: bool) -> Header | None:
    """The header of a file laid out as hera writes it, parsed by the C JSON decoder.

    Listing a thousand agents spends its time here, and the general scanner
    walks JSON in Python. Anything unusual (a hand-reordered file, a huge
    header, a duplicate key, an invalid field) returns None so the strict
    path reads it and reports the error properly.
    """
    try:
        fd = open_regular(path, follow=follow)
    except HeraError:
        return None  # the strict path says why
    try:
        head = os.pread(fd, _HEAD_BYTES, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    prefix = next((p for p in _PREFIXES if head.startswith(p)), None)
    if prefix is None:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return None  # the read may have cut a character; the slow path reads the rest
    try:
        decoder = json.JSONDecoder(object_pairs_hook=_no_duplicates, parse_constant=_not_json)
        raw, _ = decoder.raw_decode(text, len(prefix))
        return Header.model_validate(raw)
    except (ValueError, ValidationError, RecursionError):
        return None


def read_header(path: Path, *, follow: bool = True) -> Header:
    """The header alone: a page or two of I/O however large the brain.

    ``follow``: whether a link at ``path`` may be followed (see
    :func:`open_regular`); a cache's listing may say False, its files are never links.
    """
    header = _fast_header(Path(path), follow)
    if header is not None:
        return header
    with InstanceFile(path, header_only=True, follow=follow) as opened:
        return opened.header


def load(path: Path, *, follow: bool = True, on_bytes: OnBytes = None) -> Instance:
    """Read and verify a whole instance: every field, every checksum (``follow``: see :func:`read_header`)."""
    with InstanceFile(path, follow=follow) as opened:
        return opened.load(on_bytes)


def verify_file(path: Path, *, on_bytes: OnBytes = None) -> None:
    """Read back every field and checksum, a few chunks at a time: bounded memory whatever the brain's size.

    Given only files hera has just written (see :func:`save`), which are
    never links: one found there is not followed.
    """
    with InstanceFile(path, follow=False) as opened:
        opened.verify(on_bytes)


def load_or_previous(path: Path, *, on_bytes: OnBytes = None) -> tuple[Instance, str | None]:
    """The cached agent, or, if its file is damaged, the previous good one with a warning.

    The cache keeps ``<file>.prev`` from the save before the last (see
    :func:`save`); losing the iterations since then beats losing the agent.
    """
    from hera.instance.atomic import previous_path

    try:
        return load(path, follow=False, on_bytes=on_bytes), None  # the cache's own files, never links
    except InstanceFileError as damaged:
        previous = previous_path(Path(path))
        if not previous.exists():
            raise
        instance = load(previous, follow=False, on_bytes=on_bytes)
        return instance, previous_warning(path, damaged, instance.header)
