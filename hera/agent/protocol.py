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
  signature, so messages from one connection cannot be replayed on another,
  and so is the direction (request or reply), so an agent's signed reply
  cannot be sent back to it as a request.

Each operation's arguments are checked by name and strict type (``ARGS``):
``step`` with ``n: "5"`` or ``n: 1.5`` is refused, not coerced. No request
carries a file path: ``copy`` takes no arguments at all (the agent names
its file, in a directory only its owner reaches), and ``feed`` carries bytes
as base64 so that input need not be UTF-8. The full reference is
docs/protocol.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

MAX_MESSAGE = 1 << 20
#: The most bytes one ``feed`` may carry: the longest line ``hera signal SIGTTIN`` feeds, newline included.
FEED_LIMIT = 64 * 1024
#: How an error reply that means "not now, try again" starts: ``feed`` while the agent's input queue is full.
BUSY = "busy:"
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
    "copy",
    "down",
    "detach",
    "attach",
    "signal",
    "probes",
    "record",
    "histogram",
    "pace",
    "learning",
]


class Args(BaseModel):
    """An operation's arguments; each op's model (``ARGS``) is the one place they are checked."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: int = Field(ge=0, lt=2**53)
    op: Op
    args: dict[str, Any] = Field(default_factory=dict)
    #: The arguments as their op's model, once :func:`decode_request` validated them (never sent).
    _parsed: Args | None = PrivateAttr(default=None)

    @property
    def parsed(self) -> Args:
        """The validated arguments: what the agent's handlers receive, never the raw dict."""
        if self._parsed is None:
            self._parsed = ARGS.get(self.op, NoArgs).model_validate(self.args)
        return self._parsed


class NoArgs(Args):
    pass


#: Iteration counts a request may name (a day of a fast agent fits many times over).
MAX_ITERATIONS = 2**62


class StepArgs(Args):
    n: int = Field(1, ge=1, le=MAX_ITERATIONS)


class BreakpointAddArgs(Args):
    kind: Literal["iteration", "every", "probe"]
    value: int | str

    @model_validator(mode="after")
    def _value_fits_kind(self) -> BreakpointAddArgs:
        if self.kind == "probe":
            if not isinstance(self.value, str) or not 1 <= len(self.value) <= 256:
                raise ValueError("a probe breakpoint's value is a probe name, e.g. 'area:all' or 'neuron:7'")
        elif not isinstance(self.value, int) or not 1 <= self.value <= MAX_ITERATIONS:
            raise ValueError(f"an {self.kind!r} breakpoint's value is a positive whole number of iterations")
        return self


class BreakpointRemoveArgs(Args):
    id: int | Literal["all"]


class FeedArgs(Args):
    """Input for the agent: ``data``, any bytes as base64 (what ``hera signal SIGTTIN`` sends), or ``text``.

    Input is bytes, not text: a pipe may carry anything, and text with bytes
    that are not UTF-8 cannot even be written as JSON (the issue's pydantic
    serialisation error). ``text`` stays for people typing at the shell.
    """

    text: str | None = Field(None, max_length=MAX_MESSAGE)
    data: str | None = Field(None, max_length=4 * (FEED_LIMIT // 3 + 1))

    @model_validator(mode="after")
    def _one_of_them(self) -> FeedArgs:
        if (self.text is None) == (self.data is None):
            raise ValueError("feed takes either text or data (base64), not both and not neither")
        if self.data is not None:
            decode_data(self.data)
        return self


def decode_data(data: str) -> bytes:
    """The bytes of a ``feed`` request's ``data``; only strict base64 is accepted."""
    try:
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError("data is not base64") from None


def record_lines(records: list[dict[str, Any]]) -> str:
    """Records as JSON lines, ``{"iteration": N, "unit": N, "output": N or null}``, one per line.

    The one form a record takes as text, for the data port and for ``signal
    SIGTTOU --jsonl`` alike. Written directly (the fields are whole numbers
    and null, which need no escaping): a stream may carry millions, and this
    is about a quarter of ``json.dumps`` on each.
    """
    return "".join(
        f'{{"iteration": {r["iteration"]:d}, "unit": {r["unit"]:d}, "output": {"null" if r["output"] is None else format(r["output"], "d")}}}\n'
        for r in records
    )


def encode_data(data: bytes) -> str:
    """``data`` for a ``feed`` request."""
    return base64.b64encode(data).decode("ascii")


class ReadArgs(Args):
    """``read``: the oldest unread records, at most ``limit`` of them; ``records`` adds them to the reply.

    The reply: ``data``, the outputs of the records taken as base64 (units
    with no output skipped), ``records`` (with ``records``: one
    ``{"iteration", "unit", "output"}`` per unit presented, ``output`` null
    for none) and ``dropped`` (records lost since the last read because
    nobody read them).
    """

    records: bool = False
    limit: int | None = Field(None, ge=1, le=1 << 20)


class StateArgs(Args):
    names: list[str] | None = Field(None, max_length=4096)


class AttachArgs(Args):
    pause: bool = False
    force: bool = False


class SignalArgs(Args):
    name: Literal["SIGSTOP"]


#: The most spike indices one ``record`` reply lists (about 10 MB of JSON): past it only counts.
RECORD_LIMIT = 1 << 20


class RecordArgs(Args):
    """``record``: ``n`` single iterations, the spikes of neurons ``first`` … ``end - 1`` (a raster window).

    A big brain fires millions of spikes in a few hundred iterations; the
    window and ``limit`` (the most indices listed; the reply's ``counts`` still
    counts every spike in the window) keep the reply, and whoever draws it,
    small whatever the brain's size.
    """

    n: int = Field(200, ge=1, le=20000)
    first: int = Field(0, ge=0, lt=2**62)
    end: int | None = Field(None, ge=1, le=2**62)
    limit: int = Field(RECORD_LIMIT, ge=0, le=RECORD_LIMIT)

    @model_validator(mode="after")
    def _a_window(self) -> RecordArgs:
        if self.end is not None and self.end <= self.first:
            raise ValueError("the neuron window is first … end - 1: end must be greater than first")
        return self


#: The most bins one histogram may have.
MAX_BINS = 4096


class HistogramArgs(Args):
    """``histogram``: each named array's values counted into ``bins`` equal bins, computed in the agent.

    ``names`` picks arrays by name, ``match`` by a shell-style pattern (``*weight*``);
    neither: every array. With ``nonzero`` (the default) zeros are left out:
    a learned brain is mostly zeros, and its shape is in the rest.
    """

    names: list[str] | None = Field(None, max_length=4096)
    match: str | None = Field(None, min_length=1, max_length=256)
    bins: int = Field(50, ge=1, le=MAX_BINS)
    nonzero: bool = True

    @model_validator(mode="after")
    def _names_or_match(self) -> HistogramArgs:
        if self.names is not None and self.match is not None:
            raise ValueError("histogram takes names or match, not both")
        return self


class PaceArgs(Args):
    """``pace``: how fast the agent may iterate while running (``max``, ``N/s``, ``Fx``; see :mod:`hera.pace`)."""

    pace: str = Field(max_length=64)

    @field_validator("pace")
    @classmethod
    def _a_pace(cls, value: str) -> str:
        from hera.pace import parse

        return parse(value).text


#: The most decisions one ``learning`` reply lists: the agent's rolling window (hera.agent.runner.learning.WINDOW).
DECISION_LIMIT = 1000


class LearningArgs(Args):
    """``learning``: how well the agent predicts what it is fed (a family whose I/O contract ``predicts``).

    The reply: the rolling figures ``status`` carries as ``learning``
    (accuracy and log-loss over the last ``window`` units, and since up),
    ``decisions``, the last ``decisions`` scored records oldest first
    (``{"iteration", "unit", "predicted", "log_loss"}``, ``predicted`` and
    ``log_loss`` null where there was none), and with ``curve`` the learning
    curve (``{"block", "points": [{"units", "iteration", "count",
    "accuracy", "log_loss"}]}``, one point per block of units).
    """

    decisions: int = Field(0, ge=0, le=DECISION_LIMIT)
    curve: bool = False


ARGS: dict[str, type[Args]] = {
    "step": StepArgs,
    "breakpoint_add": BreakpointAddArgs,
    "breakpoint_remove": BreakpointRemoveArgs,
    "feed": FeedArgs,
    "read": ReadArgs,
    "state": StateArgs,
    "attach": AttachArgs,
    "signal": SignalArgs,
    "record": RecordArgs,
    "histogram": HistogramArgs,
    "pace": PaceArgs,
    "learning": LearningArgs,
}


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
        request = Request.model_validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        if tuple(first["loc"]) == ("op",) and isinstance(first.get("input"), str):
            raise ProtocolError(f"bad request: unknown operation {first['input'][:64]!r}") from None
        raise ProtocolError(f"bad request: {_first_error(exc)}") from None
    # Each operation's arguments, by name and strict type; unknown ones are refused.
    try:
        parsed = ARGS.get(request.op, NoArgs).model_validate(request.args)
    except ValidationError as exc:
        raise ProtocolError(f"bad request: {request.op}: {_first_error(exc, 'args')}") from None
    request.args = parsed.model_dump(exclude_unset=True)
    request._parsed = parsed
    return request


def _first_error(exc: ValidationError, prefix: str = "") -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "") or "message"
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}"


def decode_reply(line: bytes) -> Reply:
    try:
        return Reply.model_validate_json(line)
    except ValidationError as exc:
        raise ProtocolError(f"bad reply from agent: {exc.errors()[0]['msg']}") from None


#: Who signed a message: a request from a controller, or a reply from the agent. It is part of
#: every signature, so nothing one side signed can be sent back to it as if the other had.
REQUEST, REPLY = "request", "reply"


def sign(key: bytes, nonce: str, seq: int, payload: str, direction: str = REQUEST) -> str:
    return hmac.new(key, f"{direction}\n{nonce}\n{seq}\n{payload}".encode(), hashlib.sha256).hexdigest()


def wrap(key: bytes, nonce: str, seq: int, message: BaseModel, direction: str = REQUEST) -> bytes:
    payload = message.model_dump_json()
    signed = Signed(seq=seq, payload=payload, signature=sign(key, nonce, seq, payload, direction))
    return encode(signed)


class Verifier:
    """Checks signed messages of one TCP connection: right key, this nonce and direction, rising sequence."""

    def __init__(self, key: bytes, nonce: str, limit: int = MAX_MESSAGE * 2, direction: str = REQUEST) -> None:
        self.key = key
        self.nonce = nonce
        self.limit = limit
        self.direction = direction
        self.last_seq = -1

    def open(self, line: bytes) -> bytes:
        if len(line) > self.limit:
            raise ProtocolError("message too large")
        try:
            signed = Signed.model_validate_json(line)
        except ValidationError:
            raise ProtocolError("unsigned or malformed message") from None
        expected = sign(self.key, self.nonce, signed.seq, signed.payload, self.direction)
        if not hmac.compare_digest(expected, signed.signature):
            raise ProtocolError("bad signature")
        if signed.seq <= self.last_seq:
            raise ProtocolError("replayed message")
        self.last_seq = signed.seq
        return signed.payload.encode()


#: The direction word of the hello's proof: neither a request's nor a reply's, so a proof is never
#: accepted as either, nor either as a proof.
HELLO = "hello"


def hello_proof(key: bytes, nonce: str, uuid: str) -> str:
    """What the agent shows, in its hello on TCP, to prove it holds the key before a client sends a byte.

    Signed messages are not encrypted: a client that talked to whatever now
    listens on a dead agent's port (its connection file left behind by a
    SIGKILL) would hand that process its input in clear. The proof binds the
    connection's fresh nonce, so it cannot be replayed from another
    connection, and only the key's holder can make it.
    """
    return sign(key, nonce, 0, uuid, HELLO)


def hello(nonce: str, uuid: str, auth: bool, key: bytes | None = None) -> bytes:
    """The server's first line: who it is, the nonce signatures must include, and (on TCP) its proof."""
    message: dict[str, object] = {"hera": PROTOCOL_VERSION, "uuid": uuid, "nonce": nonce, "auth": auth}
    if auth and key is not None:
        message["proof"] = hello_proof(key, nonce, uuid)
    return json.dumps(message).encode() + b"\n"
