"""``agent`` in the hera shell: the attached agent as a Python object.

Every method is one request over the agent's control socket, so it works the
same for an agent upped in this shell and for a daemon upped elsewhere.
State arrays come back as numpy arrays (numpy is imported only when asked).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hera.errors import AgentFailed, HeraError

if TYPE_CHECKING:  # the client brings pydantic: a shell that attaches nothing never imports it
    from hera.manager import AgentManager
    from hera.manager.client import AgentClient

#: How long ``step`` waits for its iterations before giving up on the answer (the agent goes on).
STEP_TIMEOUT = 24 * 3600.0


class Breakpoints:
    """``agent.breakpoints``: add, list, remove; stops are exact."""

    def __init__(self, client: AgentClient) -> None:
        self._client = client

    def add(
        self, *, iteration: int | None = None, every: int | None = None, probe: str | None = None
    ) -> dict[str, Any]:
        """One of: ``iteration=N`` (stop when N is reached), ``every=N``, ``probe="area:hidden0"``/``"neuron:12"``/``"output"``."""
        given = [(k, v) for k, v in (("iteration", iteration), ("every", every), ("probe", probe)) if v is not None]
        if len(given) != 1:
            raise HeraError("give exactly one of iteration=, every= or probe=")
        kind, value = given[0]
        return dict(self._client.request("breakpoint_add", kind=kind, value=value))

    def remove(self, id: int | str = "all") -> list[dict[str, Any]]:
        return list(self._client.request("breakpoint_remove", id=id))

    def list(self) -> list[dict[str, Any]]:
        return list(self._client.request("breakpoints"))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.list())

    def __len__(self) -> int:
        return len(self.list())

    def __repr__(self) -> str:
        items = self.list()
        if not items:
            return "no breakpoints"
        return "\n".join(f"{bp['id']}: {bp['kind']} {bp['value']}" for bp in items)


class NoSuchArray(KeyError):
    """``agent.state[NAME]`` for a name the brain lacks: a KeyError, so ``in`` and ``.get`` work, whose
    one-line message lists the names it has (a bare ``KeyError: 'wieghts'`` says nothing of them)."""

    def __str__(self) -> str:
        return str(self.args[0])


class State(Mapping[str, Any]):
    """``agent.state``: the brain's arrays, pulled from the device when read."""

    def __init__(self, client: AgentClient, callsign: str = "the agent") -> None:
        self._client = client
        self._callsign = callsign
        self._names: list[str] | None = None

    def _pull(self, names: list[str] | None) -> dict[str, Any]:
        from pathlib import Path

        from hera.agent.snapshot import read_snapshot

        reply = self._client.request("state", timeout=None, names=names)
        _, arrays = read_snapshot(Path(reply["path"]))
        return arrays

    def __getitem__(self, name: str) -> Any:
        try:
            return self._pull([name])[name]
        except AgentFailed as exc:
            if "no state array" not in exc.message:
                raise
            listed = re.search(r"arrays: (.*)$", exc.message)
            names = listed[1] if listed else ", ".join(self)
            raise NoSuchArray(f"{self._callsign} has no state array {name!r}; its arrays: {names}") from None

    def __iter__(self) -> Iterator[str]:
        if self._names is None:
            self._names = list(self._pull(None))
        return iter(self._names)

    def __len__(self) -> int:
        return len(list(iter(self)))

    def all(self) -> dict[str, Any]:
        """Every array at once (one pull)."""
        return self._pull(None)

    def __repr__(self) -> str:
        """What there is to read, by name (the names are pulled once; the arrays only when read)."""
        return f"<agent.state of {self._callsign}: {', '.join(sorted(self))}>"


class AgentHandle:
    """The attached agent."""

    def __init__(self, client: AgentClient, manager: AgentManager, *, on_down: Callable[[], None] | None = None) -> None:
        self.client = client
        self.manager = manager
        self.uuid = manager.uuid
        self.callsign = manager.callsign
        self._on_down = on_down
        self.breakpoints = Breakpoints(client)
        self.state = State(client, self.callsign)
        #: The agent's pid, from its answer to ``attach``: waited on when it goes down elsewhere.
        self.pid: int | None = None
        #: Whether the agent let this shell go (SIGHUP, SIGCONT, another controller's attach --force).
        self.let_go = False
        self._events: list[dict[str, Any]] = []

    def status(self, timeout: float = 5.0) -> dict[str, Any]:
        """State, iteration, rate, breakpoints, stats: answered at once, even mid-batch.

        What others did to the agent comes with it (``events``, ``you_hold``):
        kept for the shell's next prompt (:meth:`take_news`), whoever asked.
        """
        status = dict(self.client.request("status", timeout=timeout))
        self._events += status.pop("events", None) or []
        if status.get("you_hold") is False:
            self.let_go = True
        return status

    def take_news(self, status: dict[str, Any]) -> tuple[list[str], bool]:
        """The lines for what others did since the last look, and whether the agent let this shell go."""
        from hera.commands.foreground import event_lines

        events, self._events = self._events, []
        return event_lines(self.callsign, {**status, "events": events, "you_hold": not self.let_go})

    def log_path(self) -> Path:
        """The agent's log, where it says why it went down."""
        from hera import cli
        from hera.commands import target
        from hera.manager.files import log_path

        return log_path(target.log_dir(cli.context("logs"), self.manager.store), self.uuid)

    @property
    def iteration(self) -> int:
        return int(self.status()["iteration"])

    def step(self, n: int = 1) -> int:
        """Run exactly ``n`` iterations (fewer if a breakpoint fires) and pause; returns the iteration.

        Ctrl-C while it waits pauses the agent where it is and returns that iteration.
        """
        try:
            return int(self.client.request("step", timeout=STEP_TIMEOUT, n=n)["iteration"])
        except KeyboardInterrupt:
            return int(self.client.request("pause", timeout=STEP_TIMEOUT)["iteration"])

    def run(self) -> str:
        return self._say(self.client.request("run"))

    def pause(self) -> str:
        return self._say(self.client.request("pause"))

    def standby(self) -> str:
        return self._say(self.client.request("standby"))

    def pace(self, pace: str | None = None) -> str:
        """The pace it keeps while running (``max``, ``N/s``, ``Fx``); ``pace("50/s")`` sets it from now on."""
        if pace is None:
            return str(self.status()["pace"])
        from hera.pace import PaceError, parse

        try:
            text = parse(pace).text
        except PaceError as exc:
            raise HeraError(str(exc)) from None
        return str(self.client.request("pace", pace=text)["pace"])

    def feed(self, data: bytes | str) -> int:
        """Queue exactly these units for the input area (a str as its UTF-8 bytes; nothing added); how many.

        Any size: it goes in chunks, waiting while the agent's input queue is
        full, as ``hera signal SIGTTIN`` does (Ctrl-C stops it; what went in stays).
        """
        from hera import streams

        units = data.encode() if isinstance(data, str) else bytes(data)
        return streams.feed(self.client, streams.pieces(units), streams.Fed(self.callsign)).bytes

    def read(self) -> bytes:
        """The bytes the output area produced since the last read (units that produced nothing add none)."""
        from hera import streams

        return b"".join(streams.output(reply) for reply in self._reads())

    def records(self) -> list[dict[str, Any]]:
        """One record per unit presented since the last read: ``{"iteration", "unit", "output"}`` (None: nothing)."""
        return [record for reply in self._reads() for record in reply["records"]]

    def _reads(self) -> Iterator[dict[str, Any]]:
        from hera import streams

        for reply in streams.reads(self.client):
            if reply["dropped"]:
                import sys

                print(f"hera: {reply['dropped']:,} unread record(s) were dropped before this read", file=sys.stderr)
            yield reply

    def learning(self) -> dict[str, Any]:
        """How well it predicts what it is fed: accuracy and log-loss over its last units, and since up.

        For a family whose output predicts its input (abraxas); the figures
        start again at every up. ``log_loss`` (bits per unit) is None where the
        family gives no probabilities.
        """
        reply = dict(self.client.request("learning"))
        reply.pop("decisions", None)
        return reply

    def decisions(self, n: int = 20) -> list[dict[str, Any]]:
        """Its last ``n`` decisions (at most 1,000), oldest first: ``{"iteration", "unit", "predicted", "log_loss"}``.

        ``predicted`` is None where its output said nothing on that unit's
        tick, ``log_loss`` (bits) where the family gives no probabilities.
        """
        from hera.agent.protocol import DECISION_LIMIT

        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= DECISION_LIMIT:
            raise HeraError(f"decisions takes a whole number from 0 to {DECISION_LIMIT:,}, not {n!r}")
        return list(self.client.request("learning", decisions=n)["decisions"])

    def probes(self) -> list[str]:
        return [p["name"] for p in self.client.request("probes")]

    def checkpoint(self) -> str:
        return str(self.client.request("checkpoint", timeout=None)["path"])

    def down(self) -> str:
        """Stop the agent and save its complete state in the cache; this shell detaches.

        Returns once the agent process has exited, as ``hera down`` does, so a
        listing right after says ``down``.
        """
        result = self.manager.shutdown()
        if self._on_down is not None:
            self._on_down()
        return f"down {self.callsign} at iteration {result['iteration']}; detached"

    def _say(self, status: dict[str, Any]) -> str:
        return f"{self.callsign} {status['state']} at iteration {status['iteration']}"

    def __repr__(self) -> str:
        try:
            status = self.status()
        except HeraError:
            return f"<agent {self.callsign} (gone)>"
        return f"<agent {self.callsign} {status['state']} @{status['iteration']}>"


class Unattached:
    """What ``agent`` is when no agent is attached: every use says how to attach."""

    def __getattr__(self, name: str) -> Any:
        raise HeraError("no agent is attached", hint="'attach [ID]' attaches one ('agents' lists them)")

    def __repr__(self) -> str:
        return "<no agent attached: 'attach [ID]'>"
