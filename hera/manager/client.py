"""Talking to a running agent: what controllers, the shell and scripts use.

Over the agent's unix socket (same user, private runtime directory), or over
its loopback TCP port with the key from its 0600 connection file, every
message signed. Never imports Taichi.

Before anything is sent or believed, the client checks who it talks to: on
the unix socket, the uid of the process serving it (``SO_PEERCRED``) must be
the expected one (by default the caller's own); a connection file must be a
regular file of the caller's, not a link, that no one else can change. A
socket served by anyone else is refused in one line: it could only be an
impostor's, and what the owner would send (input, ``down``) is theirs.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any

from hera.agent import protocol
from hera.errors import AgentFailed, HeraError
from hera.ownership import user_name

#: ``request``'s default: the connection's own timeout.
DEFAULT_TIMEOUT: object = object()


class AgentGone(HeraError):
    """The agent closed the connection (it went down, or was killed)."""


class AgentClient:
    def __init__(
        self, sock: socket.socket, *, key: bytes | None = None, timeout: float | None = 30.0, uuid: str | None = None
    ) -> None:
        self.sock = sock
        self.sock.settimeout(timeout)
        self.reader = sock.makefile("rb")
        self.key = key
        self.ids = itertools.count(1)
        self.seq = 0
        hello = self._line()
        try:
            info = json.loads(hello)
            self.nonce = str(info["nonce"])
            self.uuid = str(info["uuid"])
        except (ValueError, KeyError, TypeError):
            self.close()
            raise HeraError("the agent's socket did not answer as a hera agent") from None
        if key is not None:
            self._check_proof(info, key, uuid)
        self.verifier = protocol.Verifier(key, self.nonce, protocol.MAX_REPLY * 2, protocol.REPLY) if key is not None else None

    def _check_proof(self, info: dict[str, Any], key: bytes, uuid: str | None) -> None:
        """Before a byte is sent on TCP: the other end must prove it holds the key, and be the agent expected."""
        import hmac

        proof = info.get("proof")
        expected = protocol.hello_proof(key, self.nonce, self.uuid)
        if not isinstance(proof, str) or not hmac.compare_digest(proof, expected) or (uuid is not None and self.uuid != uuid):
            self.close()
            raise HeraError(
                "the process on the agent's port did not prove it holds the agent's key; nothing was sent to it",
                hint="the agent may be gone and its connection file stale (see 'hera agents'); up it again",
            )

    @classmethod
    def unix(cls, path: Path, timeout: float | None = 30.0, *, owner: int | None = None) -> AgentClient:
        """Connect to the agent's socket; refused unless a process of ``owner`` (default: us) serves it."""
        owner = os.getuid() if owner is None else owner
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(str(path))
                served_by = _peer_uid(sock, path)
                break
            except BlockingIOError:
                # A full listen backlog (a flood of connections the agent is shedding) answers EAGAIN
                # at once on a unix socket, where TCP would wait: wait the same way, up to the timeout.
                sock.close()
                if deadline is not None and time.monotonic() >= deadline:
                    raise AgentGone(f"cannot reach the agent at {path}: it is not accepting connections") from None
                time.sleep(0.05)
            except OSError as exc:
                sock.close()
                raise AgentGone(f"cannot reach the agent at {path}: {exc.strerror or exc}") from None
        if served_by != owner:
            sock.close()
            raise HeraError(
                f"{path} is served by a process of another user ({user_name(served_by)}), not by your agent; "
                "nothing was sent to it",
                hint="remove that socket, and keep your runtime directory private (see 'hera info')",
            )
        return cls(sock, timeout=timeout)

    @classmethod
    def tcp(cls, connection_file: Path, timeout: float | None = 30.0) -> AgentClient:
        from hera.manager.files import ConnectionFile

        info = ConnectionFile.read(Path(connection_file))
        try:
            sock = socket.create_connection((info.ip, info.port), timeout=timeout)
        except OSError as exc:
            raise AgentGone(f"cannot reach the agent at {info.ip}:{info.port}: {exc.strerror or exc}") from None
        return cls(sock, key=info.key_bytes, timeout=timeout, uuid=info.uuid)

    def _line(self) -> bytes:
        try:
            line = self.reader.readline(protocol.MAX_REPLY * 2 + 2)
        except TimeoutError:
            raise HeraError("the agent did not answer in time") from None
        except OSError as exc:
            raise AgentGone(f"lost the agent: {exc}") from None
        if not line:
            raise AgentGone("the agent closed the connection")
        return line

    def request(self, op: str, timeout: float | None | object = DEFAULT_TIMEOUT, **args: Any) -> Any:
        """Send one request and return its result; an error reply becomes a HeraError."""
        request = protocol.Request(id=next(self.ids), op=op, args=args)
        if self.key is not None:
            data = protocol.wrap(self.key, self.nonce, self.seq, request)
            self.seq += 1
        else:
            data = protocol.encode(request)
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise AgentGone(f"lost the agent: {exc}") from None
        previous = self.sock.gettimeout()
        if timeout is not DEFAULT_TIMEOUT:  # None: wait as long as the agent needs (down, state of a big brain)
            self.sock.settimeout(timeout)  # type: ignore[arg-type]
        try:
            while True:
                line = self._line()
                if self.verifier is not None:
                    try:
                        line = self.verifier.open(line)
                    except protocol.ProtocolError as exc:
                        raise HeraError(f"the agent's reply failed verification: {exc}") from None
                reply = protocol.decode_reply(line)
                if reply.id in (request.id, 0):
                    break
        finally:
            self.sock.settimeout(previous)
        if not reply.ok:
            raise AgentFailed(f"agent: {reply.error}")  # the agent refused or failed: exit status 5
        return reply.result

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
            self.sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _peer_uid(sock: socket.socket, path: Path) -> int:
    """The uid of the process serving a connected unix socket.

    ``SO_PEERCRED`` where the system has it (Linux): the credentials the
    server had when it called listen, which no one else can forge. Elsewhere,
    the owner of the socket file, which is its creator's.
    """
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", creds)[1])
    return os.lstat(path).st_uid
