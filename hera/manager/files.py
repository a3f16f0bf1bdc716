"""The files an up agent and its controllers share, defined once for both ends.

Each is a pydantic model or a name computed here, read and written by this
module only: the agent process (``hera.agent.main``) writes them, the
controller (:mod:`hera.manager`) reads them, and neither parses the other's
JSON by hand.

* the **launch** (:class:`Launch`): what the controller tells a new agent
  process, as JSON on its command line;
* the **runtime files** (:class:`hera.cache.paths.RuntimeFiles`, named beside the runtime directory they live in): ``<uuid>.pid``, ``.lock``,
  ``.sock``, ``.connection.json`` and ``.status.json`` in the user's private
  runtime directory;
* the **connection file** (:class:`ConnectionFile`): the loopback TCP port and
  the key of a daemon, 0600, the jupyter_client convention;
* the **live status** (:class:`LiveStatus`): what the agent publishes of
  itself (state, iteration, rate, mode, who holds its terminal, the phase of
  a long load or save and how far it is) so that a listing reads it without
  asking the agent and waiting for its batch, and a controller waiting for a
  big brain to come up or go down can draw its progress.

Reading is never through a link, never another user's file, never one that
someone else may change (:func:`read_private`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hera.errors import HeraError

#: A connection or status file is a few hundred bytes; more is not one.
MAX_SMALL_FILE = 1 << 16


class Launch(BaseModel):
    """Everything the controller tells a new agent process (as JSON on argv)."""

    uuid: str
    cache_path: Path
    runtime_dir: Path
    log_dir: Path
    workdir: Path
    device: str  # "cpu" or "cuda:N"
    daemon: bool = False
    tcp_host: str = "127.0.0.1"
    #: A daemon's key from this private file (64 hex digits) instead of a fresh one: a cluster agent's key is
    #: made by its owner's controller, which alone keeps it (docs/cluster.md). Never on argv: others read argv.
    key_file: Path | None = None
    start_state: str = "running"
    autosave_interval: float = 300.0
    #: The pace to keep (see :mod:`hera.pace`); None keeps the one the instance was built or last run with.
    pace: str | None = None
    ready_fd: int = -1


def read_key(path: Path) -> bytes:
    """A 32-byte key kept as 64 hex digits in a private file (:func:`read_private`); one line if it is not one."""
    try:
        text = read_private(path).strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError) as exc:
        raise HeraError(f"{path}: not a readable hera key file ({exc})") from None
    if len(key) != 32:
        raise HeraError(f"{path}: not a readable hera key file (a key is 64 hex digits)")
    return key


def write_key(path: Path, key: bytes) -> None:
    """``key`` as a private key file: 0600, created fresh and renamed into place, fsynced."""
    _write_private(path, key.hex() + "\n")


def log_path(log_dir: Path, uuid: str) -> Path:
    return log_dir / f"{uuid}.log"


class ConnectionFile(BaseModel):
    """A daemon's ``<uuid>.connection.json``: where its TCP port is and the key that signs every message."""

    model_config = ConfigDict(extra="forbid")

    uuid: str
    pid: int
    transport: Literal["tcp"] = "tcp"
    ip: str
    port: int = Field(ge=1, le=65535)
    key: str = Field(pattern=r"^[0-9a-f]{64}$")
    signature_scheme: Literal["hmac-sha256"] = "hmac-sha256"
    #: The data port beside ``port`` (same ``ip``, same key): raw bytes in, records out (docs/protocol.md).
    data_port: int | None = Field(None, ge=1, le=65535)

    @property
    def key_bytes(self) -> bytes:
        return bytes.fromhex(self.key)

    def write(self, target: Path) -> None:
        """The key's only copy on disk: an unguessable temporary created exclusively, renamed into place."""
        _write_private(target, self.model_dump_json())

    @classmethod
    def read(cls, path: Path) -> ConnectionFile:
        try:
            return cls.model_validate_json(read_private(path))
        except (OSError, ValueError) as exc:
            reason = _first_error(exc) if isinstance(exc, ValidationError) else str(exc)
            raise HeraError(f"{path}: not a readable hera connection file ({reason})") from None


#: The long work an agent reports (its status file's ``phase``), in words: loading, then saving.
PHASE_WORDS = {"read": "loading", "init": "loading", "load": "loading", "save": "saving"}

#: MODE in ``hera agents``: a controller holds the terminal; nobody does; nobody does and it serves TCP.
Mode = Literal["attached", "detached", "daemon"]


class LiveStatus(BaseModel):
    """What an up agent says of itself, rewritten on every change of state and about once a second while it runs."""

    model_config = ConfigDict(extra="ignore")

    uuid: str
    pid: int
    state: str
    iteration: int
    rate: float = 0.0
    mode: Mode
    #: The pid of the controller holding the agent's terminal (foreground ``hera up`` or an attached shell).
    holder_pid: int | None = None
    device: str
    tcp_port: int | None = None
    #: The daemon's data port (docs/protocol.md, "The data port"); None without daemon mode.
    data_port: int | None = None
    pace: str | None = None
    #: Units fed, presented, pending and answered (``status``'s ``io``); ``{"unit": None}`` without an input area.
    io: dict[str, Any] | None = None
    #: How well it predicts what it is fed (``status``'s ``learning``: rolling accuracy, log-loss); None where not scored.
    learning: dict[str, Any] | None = None
    #: The long work under way, if any: ``read``, ``init``, ``load`` (decode and upload) while it comes up,
    #: ``save`` while it writes its state. ``done`` of ``total`` bytes (None: not counted in bytes).
    phase: str | None = None
    done: int | None = None
    total: int | None = None
    #: When it was written (seconds since the epoch): a reader can tell how fresh ITERATION is.
    written_at: float = Field(default_factory=time.time)

    @property
    def shown(self) -> str:
        """The state in words, as ``hera agents`` shows it: ``loading 43 %``, ``saving 71 %`` while a phase lasts.

        A checkpoint written while the loop runs on says both: ``running, saving 71 %``.
        """
        if self.phase is None:
            return self.state
        word = PHASE_WORDS.get(self.phase, self.phase)
        if self.total and self.done is not None:
            word += f" {min(100, 100 * self.done // self.total)} %"
        return word if self.state in ("loading", "saving") else f"{self.state}, {word}"

    def write(self, target: Path) -> None:
        """Atomic (a fresh temporary renamed into place) but not fsynced: rewritten every second, gone at reboot."""
        _write_private(target, self.model_dump_json(), sync=False)

    @classmethod
    def read(cls, path: Path) -> LiveStatus | None:
        """The published status, or None where there is none (the agent has not written it yet, or went)."""
        try:
            return cls.model_validate_json(read_private(path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None


def _write_private(target: Path, text: str, *, sync: bool = True) -> None:
    """``text`` as ``target``, 0600, atomically; created fresh (``O_EXCL|O_NOFOLLOW``), so no planted link catches it."""
    from hera.instance.atomic import atomic_write, temporary_path

    if sync:
        with atomic_write(target, 0o600) as out:
            out.write(text.encode())
        return
    tmp = temporary_path(target)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_private(path: Path, owner: int | None = None) -> str:
    """A small file's text: never through a link, only a regular file of ``owner``'s (default: ours) that no one else may change.

    Opened by :func:`hera.safe_open.open_regular`, so a FIFO or device
    planted at its name is refused before it is opened. ``owner`` is for
    root's listing of another user's agents, whose files are theirs.
    """
    from hera.ownership import others_may_write, user_name
    from hera.safe_open import open_regular

    fd, info = open_regular(path, follow=False)
    try:
        if info.st_uid != (os.getuid() if owner is None else owner):
            raise ValueError(f"it belongs to another user ({user_name(info.st_uid)})")
        writers = others_may_write(info)
        if writers:
            raise ValueError(f"{writers} may change it")
        return os.read(fd, MAX_SMALL_FILE).decode("utf-8")
    finally:
        os.close(fd)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error.get("loc", ())) or "file"
    return f"{where}: {error.get('msg')}"

