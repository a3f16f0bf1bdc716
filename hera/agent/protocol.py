"""The control protocol between controllers and an agent: validated messages, nothing executed.

Framing: one JSON object per line (UTF-8), at most ``MAX_MESSAGE`` bytes.
A request names an operation and its arguments; the agent answers each with a
reply carrying the same ``id``. Every message is validated with pydantic; a
malformed or oversized one gets an error reply (or the connection is closed)
and never reaches the inner loop. Nothing received is unpickled or evaluated.

Authentication, as Jupyter kernels do it:

* the unix socket lives in the 0700 runtime directory, is 0600, and the agent
  checks the peer's uid (SO_PEERCRED);
* TCP ports (daemon mode, loopback only) require every message to carry an
  HMAC-SHA256 signature with the key from the 0600 connection file, over the
  message and a sequence number that must rise, so a replayed message is
  refused. The server opens with a random nonce that is part of every
  signature, so messages from one connection cannot be replayed on another.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_MESSAGE = 1 << 20
#: Replies may be larger (spike records); requests stay small.
MAX_REPLY = 64 << 20
PROTOCOL_VERSION = 1

Op = Literal[
    "hello",
    "status",
    "run",
    "pause",
    "standby",
    "step",
    "breakpoint_add",
    "breakpoint_remove",
    "breakpoints",
    "feed",
    "read",
    "state",
    "checkpoint",
    "down",
    "detach",
    "attach",
    "signal",
    "probes",
    "record",
]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=0, lt=2**53)
    op: Op
    args: dict[str, Any] = Field(default_factory=dict)


class Reply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int
    ok: bool
    result: Any = None
    error: str | None = None


class Signed(BaseModel):
    """A message on a TCP port: the payload, its sequence number and its signature."""

    model_config = ConfigDict(extra="forbid")
    seq: int = Field(ge=0, lt=2**63)
    payload: str = Field(max_length=MAX_REPLY)
    signature: str = Field(pattern=r"^[0-9a-f]{64}$")


class ProtocolError(ValueError):
    """A message that breaks the protocol; the text is safe to send back."""


def encode(message: BaseModel) -> bytes:
    return message.model_dump_json().encode() + b"\n"


def decode_request(line: bytes) -> Request:
    if len(line) > MAX_MESSAGE:
        raise ProtocolError(f"message larger than {MAX_MESSAGE} bytes")
    try:
        return Request.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise ProtocolError(f"bad request: {where}: {first['msg']}") from None


def decode_reply(line: bytes) -> Reply:
    try:
        return Reply.model_validate_json(line)
    except ValidationError as exc:
        raise ProtocolError(f"bad reply from agent: {exc.errors()[0]['msg']}") from None


def sign(key: bytes, nonce: str, seq: int, payload: str) -> str:
    return hmac.new(key, f"{nonce}\n{seq}\n{payload}".encode(), hashlib.sha256).hexdigest()


def wrap(key: bytes, nonce: str, seq: int, message: BaseModel) -> bytes:
    payload = message.model_dump_json()
    signed = Signed(seq=seq, payload=payload, signature=sign(key, nonce, seq, payload))
    return encode(signed)


class Verifier:
    """Checks signed messages of one TCP connection: right key, this nonce, rising sequence."""

    def __init__(self, key: bytes, nonce: str, limit: int = MAX_MESSAGE * 2) -> None:
        self.key = key
        self.nonce = nonce
        self.limit = limit
        self.last_seq = -1

    def open(self, line: bytes) -> bytes:
        if len(line) > self.limit:
            raise ProtocolError("message too large")
        try:
            signed = Signed.model_validate_json(line)
        except ValidationError:
            raise ProtocolError("unsigned or malformed message") from None
        expected = sign(self.key, self.nonce, signed.seq, signed.payload)
        if not hmac.compare_digest(expected, signed.signature):
            raise ProtocolError("bad signature")
        if signed.seq <= self.last_seq:
            raise ProtocolError("replayed message")
        self.last_seq = signed.seq
        return signed.payload.encode()


def hello(nonce: str, uuid: str, auth: bool) -> bytes:
    """The server's first line: who it is, and the nonce signatures must include."""
    return json.dumps({"hera": PROTOCOL_VERSION, "uuid": uuid, "nonce": nonce, "auth": auth}).encode() + b"\n"
