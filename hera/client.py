"""Talking to a running agent: what controllers, the shell and scripts use.

Over the agent's unix socket (same user, private runtime directory), or over
its loopback TCP port with the key from its 0600 connection file, every
message signed. Never imports Taichi.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
from pathlib import Path
from typing import Any

from hera.agent import protocol
from hera.errors import HeraError


#: ``request``'s default: the connection's own timeout.
DEFAULT_TIMEOUT: object = object()


class AgentGone(HeraError):
    """The agent closed the connection (it went down, or was killed)."""


class AgentClient:
    def __init__(self, sock: socket.socket, *, key: bytes | None = None, timeout: float | None = 30.0) -> None:
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
            raise HeraError("the agent's socket did not answer as a hera agent") from None
        self.verifier = protocol.Verifier(key, self.nonce, protocol.MAX_REPLY * 2, protocol.REPLY) if key is not None else None

    @classmethod
    def unix(cls, path: Path, timeout: float | None = 30.0) -> AgentClient:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(str(path))
        except OSError as exc:
            sock.close()
            raise AgentGone(f"cannot reach the agent at {path}: {exc.strerror or exc}") from None
        return cls(sock, timeout=timeout)

    @classmethod
    def tcp(cls, connection_file: Path, timeout: float | None = 30.0) -> AgentClient:
        try:
            info = json.loads(Path(connection_file).read_text())
            host, port, key = str(info["ip"]), int(info["port"]), bytes.fromhex(info["key"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HeraError(f"{connection_file}: not a readable hera connection file ({exc})") from None
        try:
            sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise AgentGone(f"cannot reach the agent at {host}:{port}: {exc.strerror or exc}") from None
        return cls(sock, key=key, timeout=timeout)

    def _line(self) -> bytes:
        try:
            line = self.reader.readline(protocol.MAX_REPLY * 2 + 2)
        except socket.timeout:
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
            raise HeraError(f"agent: {reply.error}")
        return reply.result

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.reader.close()
            self.sock.close()

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
