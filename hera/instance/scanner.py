"""A strict JSON reader over bytes that leaves long strings where they lie.

Instance files hold gigabytes of base64 in JSON strings. The standard
``json`` module would first turn the whole file into one Python ``str`` and
then into objects, several times the array bytes in memory. This reader walks
the same grammar over a ``bytes``/``mmap`` buffer and returns every long,
escape-free string as a :class:`Span` (an offset pair) instead, so the codec
can decode it chunk by chunk straight into the destination array.

It never evaluates anything: it only recognises JSON values, rejects
duplicate keys (an edited file must not carry two meanings) and limits nesting
depth so malicious input cannot exhaust the stack.
"""

from __future__ import annotations

import json
import mmap
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Given the object read so far and the key being read, the exact length a
#: string value should have, if known. A hint lets the reader jump over
#: gigabytes of base64 instead of searching them for the closing quote; the
#: consumer of the resulting Span must validate its contents (base64 decoding
#: with validation rejects quotes and backslashes, so a wrong jump is caught).
LengthHint = Callable[[dict[str, Any], str], "int | None"]

_WS = b" \t\n\r"
#: The longest number read, in characters. Python refuses to parse integers of
#: more than 4,300 digits (a ValueError that was not a ScanError); no number in
#: an instance or a settings file needs a hundredth of this.
MAX_NUMBER = 400
_NUMBER = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LITERALS = {b"true": True, b"false": False, b"null": None}
MAX_DEPTH = 64
LAZY_STRING_BYTES = 1024
_LINE_WINDOW = 1 << 20


@dataclass(frozen=True, slots=True)
class Span:
    """A JSON string's contents, left in the buffer: ``buf[start:end]``.

    Its contents are unchecked: whoever decodes it validates every byte.
    """

    start: int
    end: int

    def __len__(self) -> int:
        return self.end - self.start


def label(key: str, limit: int = 80) -> str:
    """``key`` as it may appear in a one-line message: itself if short and printable, else its repr, cut."""
    return key if key.isprintable() and len(key) <= limit else repr(key)[:limit]


class ScanError(ValueError):
    """Malformed JSON at byte offset ``pos``."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


def line_col(buf: Any, pos: int) -> tuple[int, int]:
    """1-based line and column of a byte offset, for error messages.

    Counted a window at a time: the error may lie gigabytes into a mapped
    file, and a copy of everything before it would need that much memory.
    """
    pos = max(0, min(pos, len(buf)))
    lines, last = 0, -1
    for start in range(0, pos, _LINE_WINDOW):
        window = bytes(buf[start : min(pos, start + _LINE_WINDOW)])
        lines += window.count(b"\n")
        found = window.rfind(b"\n")
        if found >= 0:
            last = start + found
    return lines + 1, pos - last


class Scanner:
    """Recursive-descent reader of one JSON document held in ``buf``."""

    def __init__(
        self,
        buf: Any,
        lazy_string_bytes: int = LAZY_STRING_BYTES,
        length_hint: LengthHint | None = None,
    ) -> None:
        self.buf = buf
        self.size = len(buf)
        self.lazy = lazy_string_bytes
        self.length_hint = length_hint

    def skip_ws(self, pos: int) -> int:
        buf, size = self.buf, self.size
        while pos < size and buf[pos : pos + 1] in (b" ", b"\t", b"\n", b"\r"):
            pos += 1
        return pos

    def expect(self, pos: int, char: bytes) -> int:
        pos = self.skip_ws(pos)
        if self.buf[pos : pos + 1] != char:
            raise ScanError(f"expected {char.decode()!r}", pos)
        return pos + 1

    def value(self, pos: int, depth: int = 0, hint: int | None = None) -> tuple[Any, int]:
        """Read one value starting at ``pos``; return it and the offset after it."""
        if depth > MAX_DEPTH:
            raise ScanError("nesting too deep", pos)
        pos = self.skip_ws(pos)
        char = self.buf[pos : pos + 1]
        if char == b"{":
            return self.object(pos, depth)
        if char == b"[":
            return self.array(pos, depth)
        if char == b'"':
            return self.string(pos, hint)
        if char == b"":
            raise ScanError("unexpected end of file", pos)
        for literal, value in _LITERALS.items():
            if self.buf[pos : pos + len(literal)] == literal:
                return value, pos + len(literal)
        match = _NUMBER.match(self.buf, pos, pos + MAX_NUMBER + 1)  # never scans a gigabyte of digits
        if match is None or match.end() == pos:
            raise ScanError("expected a JSON value", pos)
        if match.end() - pos > MAX_NUMBER:
            raise ScanError(f"a number of more than {MAX_NUMBER} characters", pos)
        text = match.group()
        number: Any = float(text) if any(c in text for c in b".eE") else int(text)
        return number, match.end()

    def string(self, pos: int, hint: int | None = None) -> tuple[Any, int]:
        """Read a string; long escape-free ones come back as a :class:`Span`."""
        start = pos + 1
        if hint is not None and hint > self.lazy and self.buf[start + hint : start + hint + 1] == b'"':
            return Span(start, start + hint), start + hint + 1
        end = self.buf.find(b'"', start)
        while True:
            if end < 0:
                raise ScanError("unterminated string", pos)
            backslashes = 0
            while self.buf[end - 1 - backslashes : end - backslashes] == b"\\":
                backslashes += 1
            if backslashes % 2 == 0:
                break
            end = self.buf.find(b'"', end + 1)
        if end - start > self.lazy and self.buf.find(b"\\", start, end) < 0:
            self._release(start, end)
            return Span(start, end), end + 1
        try:
            return json.loads(bytes(self.buf[pos : end + 1])), end + 1
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ScanError(f"invalid string ({exc})", pos) from None

    def _release(self, start: int, end: int) -> None:
        """Drop a searched-through string's pages from the resident set.

        Without a length hint (a hand-reordered file puts ``data`` before
        ``dtype``) the search for the closing quote reads gigabytes of base64;
        a mapped file's pages stay in the page cache, but need not also count
        against this process until the codec reads them again, chunk by chunk.
        """
        if isinstance(self.buf, mmap.mmap):
            first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside only
            if end - first >= mmap.PAGESIZE:
                self.buf.madvise(mmap.MADV_DONTNEED, first, end - first - (end - first) % mmap.PAGESIZE)

    def object(self, pos: int, depth: int) -> tuple[dict[str, Any], int]:
        result: dict[str, Any] = {}
        pos = self.skip_ws(pos + 1)
        if self.buf[pos : pos + 1] == b"}":
            return result, pos + 1
        while True:
            pos = self.skip_ws(pos)
            if self.buf[pos : pos + 1] != b'"':
                raise ScanError("expected a key in double quotes", pos)
            key, pos = self.string(pos)
            if isinstance(key, Span):
                raise ScanError("key too long", pos)
            if key in result:
                raise ScanError(f"duplicate key {key!r}", pos)
            pos = self.expect(pos, b":")
            hint = self.length_hint(result, key) if self.length_hint else None
            result[key], pos = self.value(pos, depth + 1, hint)
            pos = self.skip_ws(pos)
            char = self.buf[pos : pos + 1]
            if char == b"}":
                return result, pos + 1
            if char != b",":
                raise ScanError("expected ',' or '}'", pos)
            pos += 1

    def array(self, pos: int, depth: int) -> tuple[list[Any], int]:
        result: list[Any] = []
        pos = self.skip_ws(pos + 1)
        if self.buf[pos : pos + 1] == b"]":
            return result, pos + 1
        while True:
            item, pos = self.value(pos, depth + 1)
            result.append(item)
            pos = self.skip_ws(pos)
            char = self.buf[pos : pos + 1]
            if char == b"]":
                return result, pos + 1
            if char != b",":
                raise ScanError("expected ',' or ']'", pos)
            pos += 1

    def document(self) -> Any:
        """Read the whole buffer as exactly one JSON value."""
        value, pos = self.value(0)
        pos = self.skip_ws(pos)
        if pos != self.size:
            raise ScanError("unexpected data after the document", pos)
        return value

    def top_level(self, wanted: set[str]) -> dict[str, Any]:
        """Read only the top-level keys in ``wanted``, stopping once all are seen.

        Listing a thousand agents must not read a thousand brains: the header
        sits at the front of every file hera writes, so this touches a page or
        two per file. Keys before the wanted ones are still parsed (strings
        skipped as spans), so reordered files still read correctly.
        """
        pos = self.expect(0, b"{")
        found: dict[str, Any] = {}
        pos = self.skip_ws(pos)
        if self.buf[pos : pos + 1] == b"}":
            return found
        while True:
            pos = self.skip_ws(pos)
            if self.buf[pos : pos + 1] != b'"':
                raise ScanError("expected a key in double quotes", pos)
            key, pos = self.string(pos)
            pos = self.expect(pos, b":")
            value, pos = self.value(pos, 1)
            if key in wanted:
                if key in found:
                    raise ScanError(f"duplicate key {key!r}", pos)
                found[key] = value
                if wanted <= found.keys():
                    return found
            pos = self.skip_ws(pos)
            char = self.buf[pos : pos + 1]
            if char == b"}":
                return found
            if char != b",":
                raise ScanError("expected ',' or '}'", pos)
            pos += 1
