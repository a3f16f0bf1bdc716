"""What the hera shell (and ``xontrib load hera``) add to a xonsh session.

* every ``hera`` subcommand as an alias, parsed by the very same parser
  (:func:`hera.cli.run`), so ``agents``, ``build``, ``up`` … behave exactly as
  ``hera agents`` … do;
* ``attach [ID]``, ``detach``, ``status`` and ``plot``;
* ``agent``: the attached agent as a Python object (see :mod:`hera.shell.handle`);
* in the hera shell itself, a prompt that shows the attached agent and its
  state, and a bottom line with its live iteration and rate;
* before each prompt, one line for each thing another process did to the
  attached agent (paused, ran, stood by, downed it, or let this shell go:
  then the shell detaches), as the foreground controller prints them;
* completion of subcommands, options, families, layouts, uuids and callsigns.

Loading this imports xonsh pieces but never Taichi, numpy or pydantic (the agent
client comes with the first attach).
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

from hera import cli
from hera.errors import HeraError
from hera.shell.handle import Unattached

if TYPE_CHECKING:
    from hera.shell.handle import AgentHandle


def unthreadable(function: Any) -> Any:
    """Run on xonsh's main thread: commands may prompt (destroy) or read stdin (signal SIGTTIN)."""
    from xonsh.tools import unthreadable as mark

    return mark(function)

ALIASES_OWN = ("attach", "detach", "status", "plot")
ATTACH_HINT = "'attach ID' (a UUID prefix or callsign), or 'attach --uuid PREFIX' / 'attach --callsign NAME'"
#: Seconds one status answer serves the prompt and the status line (they ask on every redraw).
STATUS_FRESH = 0.25
#: How long a redraw waits for the agent before saying it is not answering.
STATUS_TIMEOUT = 0.5


def _flat(stats: dict[str, Any], prefix: str = "") -> list[str]:
    """``{"spikes": {"input": 3}}`` → ``["spikes.input 3"]``: numbers only, for one line."""
    parts: list[str] = []
    for key, value in stats.items():
        if isinstance(value, dict):
            parts += _flat(value, f"{prefix}{key}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            parts.append(f"{prefix}{key} {value}")
    return parts


def _io(io: Any) -> str:
    """``fed 6  presented 4  answered 3  `` once the agent was fed anything (status's ``io``), else nothing."""
    if not isinstance(io, dict) or not io.get("fed"):
        return ""
    return f"fed {io['fed']:,}  presented {io.get('presented', 0):,}  answered {io.get('answered', 0):,}  "


def _learning(learning: Any) -> str:
    """``accuracy 0.953  log-loss 0.41 bits  `` once the agent has scored anything (status's ``learning``), else nothing.

    Over its rolling window; the log-loss is ``n/a`` where the family gives no
    probabilities.
    """
    if not isinstance(learning, dict) or not learning.get("units") or learning.get("accuracy") is None:
        return ""
    loss = learning.get("log_loss")
    shown = f"{loss:.3g} bits" if isinstance(loss, (int, float)) else "n/a"
    return f"accuracy {learning['accuracy']:.3f}  log-loss {shown}  "


def parse_alias(parser: Any, args: list[str], err: Any) -> Any:
    """An alias's arguments parsed, or the exit code when it should stop there (``--help``, a usage error)."""
    try:
        return parser.parse_args(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    except HeraError as exc:
        err.write(f"hera: {exc.line()}\n")
        return exc.exit_code


class Session:
    """One shell's hera state: which agent is attached."""

    def __init__(self, xsh: Any) -> None:
        self.xsh = xsh
        self.handle: AgentHandle | None = None
        self._status: tuple[AgentHandle, float, dict[str, Any] | str] | None = None
        self.names: list[str] = []
        self._news_handler: Any = None

    # -- attaching --------------------------------------------------------------------------------

    def attach(self, manager: Any, *, pause: bool = False, force: bool = False) -> AgentHandle:
        from hera.shell.handle import AgentHandle

        agent = manager.agent
        client = manager.client()
        try:
            attached = client.request("attach", pause=pause, force=force)
        except HeraError as exc:
            client.close()
            if "holds the prompt" in str(exc):
                raise HeraError(
                    f"another controller holds {agent.callsign}'s prompt",
                    hint=f"'attach --force {agent.callsign}' takes it over",
                ) from None
            raise
        self.detach(quiet=True)  # only now: a failed attach keeps the agent this shell had
        self.handle = AgentHandle(client, manager, on_down=lambda: self.detach(quiet=True))
        self.handle.pid = attached.get("pid")
        self.xsh.ctx["agent"] = self.handle
        return self.handle

    def detach(self, *, quiet: bool = False) -> None:
        if self.handle is None:
            return
        try:
            self.handle.client.request("detach", timeout=2)
        except HeraError:
            pass
        self.handle.client.close()
        self.handle = None
        self.xsh.ctx["agent"] = Unattached()

    # -- aliases ----------------------------------------------------------------------------------

    def command(self, name: str) -> Any:
        def alias(args: list[str], stdin: Any = None, stdout: Any = None, stderr: Any = None) -> int:
            return cli.run([name, *args], out=stdout or sys.stdout, err=stderr or sys.stderr, shell=self)

        alias.__doc__ = f"hera {name} (see '{name} --help')"
        return unthreadable(alias)

    @unthreadable
    def alias_attach(self, args: list[str], stdin: Any = None, stdout: Any = None, stderr: Any = None) -> int:
        return self._attach_cli(args, stdout or sys.stdout, stderr or sys.stderr)

    def _attach_cli(self, args: list[str], out: Any, err: Any) -> int:
        from hera.commands import target
        from hera.errors import UsageError

        parser = cli.Parser(prog="attach", description="attach this shell to an up agent")
        parser.add_argument("id", nargs="?", help="UUID, prefix or callsign (default: the only agent up)")
        parser.add_argument("--uuid", metavar="PREFIX", help="the agent by UUID or its prefix")
        parser.add_argument("--callsign", metavar="NAME", help="the agent by callsign or its prefix")
        parser.add_argument("--pause", action="store_true", help="pause its inner loop on attaching")
        parser.add_argument("--force", action="store_true", help="take the prompt from another controller")
        parsed = parse_alias(parser, args, err)
        if isinstance(parsed, int):
            return parsed
        try:
            ctx = cli.context(
                "attach", out=out, err=err, shell=self, identifier=parsed.id, uuid=parsed.uuid, callsign=parsed.callsign
            )
            try:
                manager = target.select_up(ctx, verb="attach")
            except UsageError as exc:  # several up, or several named: say it in attach's own words
                raise UsageError(exc.message, hint=ATTACH_HINT) from None
            handle = self.attach(manager, pause=parsed.pause, force=parsed.force)
            out.write(f"attached {handle!r}; 'agent' is it, 'detach' lets go\n")
            return 0
        except HeraError as exc:
            err.write(f"hera: {exc.line()}\n")
            return exc.exit_code

    def alias_detach(self, args: list[str], stdin: Any = None, stdout: Any = None, stderr: Any = None) -> int:
        out, err = stdout or sys.stdout, stderr or sys.stderr
        parser = cli.Parser(prog="detach", description="let go of the attached agent; it stays up as it is")
        if isinstance(code := parse_alias(parser, args, err), int):
            return code
        if self.handle is None:
            out.write("no agent is attached\n")
            return 0
        name = self.handle.callsign
        try:
            status = self.handle.status()
            where = f"stays up, {status['state']} at iteration {status['iteration']}"
        except HeraError:
            where = "is no longer up"
        self.detach()
        out.write(f"detached from {name}; it {where}\n")
        return 0

    def alias_status(self, args: list[str], stdin: Any = None, stdout: Any = None, stderr: Any = None) -> int:
        out, err = stdout or sys.stdout, stderr or sys.stderr
        parser = cli.Parser(prog="status", description="one line on the attached agent: state, iteration, rate, input, accuracy, spikes")
        if isinstance(code := parse_alias(parser, args, err), int):
            return code
        if self.handle is None:
            err.write("hera: no agent is attached; 'attach [ID]' attaches one\n")
            return 1
        out.write(self.status_line() + "\n")
        return 0

    def alias_plot(self, args: list[str], stdin: Any = None, stdout: Any = None, stderr: Any = None) -> int:
        from hera.shell.plot import plot_command

        return plot_command(self, args, stdout or sys.stdout, stderr or sys.stderr)

    # -- prompt -----------------------------------------------------------------------------------

    def live_status(self) -> dict[str, Any] | str:
        """The attached agent's status for the prompt and the status line, or ``"down"`` / ``"not answering"``.

        Both ask on every redraw (each key, and every second), so one answer
        is reused for a moment, and a frozen agent is not waited on for long.
        """
        from hera.manager.client import AgentGone

        handle = self.handle
        assert handle is not None
        cached = self._status
        if cached is not None and cached[0] is handle and time.monotonic() - cached[1] < STATUS_FRESH:
            return cached[2]
        try:
            status: dict[str, Any] | str = handle.status(timeout=STATUS_TIMEOUT)
        except AgentGone:
            status = "down"
        except HeraError:
            status = "not answering"
        self._status = (handle, time.monotonic(), status)
        return status

    def news(self) -> None:
        """Before a prompt: one line per thing another process did to the attached agent; detach if it let go.

        xonsh's ``on_pre_prompt_format``: the lines come before the prompt,
        and the prompt drawn next already shows what they say.
        """
        handle = self.handle
        if handle is None:
            return
        self._status = None
        status = self.live_status()
        if status == "down":
            from hera.commands.foreground import down_line

            print(down_line(handle.manager.agent, handle.log_path(), pid=handle.pid), flush=True)
            self.detach(quiet=True)
            return
        if isinstance(status, str):
            return
        lines, released = handle.take_news(status)
        for line in lines:
            print(line, flush=True)
        if released:
            self.detach(quiet=True)

    def prompt_field(self) -> str:
        """``hera``, or ``hera CALLSIGN[STATE @ITERATION]`` while attached (``[down]`` once it has gone)."""
        if self.handle is None:
            return "hera"
        status = self.live_status()
        if isinstance(status, str):
            return f"hera {self.handle.callsign}[{status}]"
        return f"hera {self.handle.callsign}[{status['state']} @{status['iteration']}]"

    def prompt(self) -> str:
        return self.prompt_field() + "> "

    def status_line(self) -> str:
        """One line: state, iteration, rate, how far through its input, how well it predicts it, and spikes."""
        if self.handle is None:
            return ""
        status = self.live_status()
        if status == "down":
            return f"{self.handle.callsign} is down (Enter: detach)"
        if not isinstance(status, str) and self.handle.let_go:
            return f"{self.handle.callsign} was let go: another controller, SIGHUP or SIGCONT (Enter: detach)"
        if isinstance(status, str):
            return f"{self.handle.callsign} not answering (a long batch, or its process is stopped)"
        spikes = "  ".join(_flat(status.get("stats") or {}))
        return (
            f"{self.handle.callsign} {status['state']}  iteration {status['iteration']}  "
            f"{status.get('rate', 0):,.0f} it/s  {_io(status.get('io'))}{_learning(status.get('learning'))}{spikes}".rstrip()
        )

    # -- installing -------------------------------------------------------------------------------

    def install(self, *, prompt: bool) -> None:
        from hera.commands import COMMANDS

        aliases = self.xsh.aliases
        for module in COMMANDS:
            name = module.__name__.rsplit(".", 1)[1]
            aliases[name] = self.command(name)
            self.names.append(name)
        for name in ALIASES_OWN:
            aliases[name] = getattr(self, f"alias_{name}")
            self.names.append(name)
        self.xsh.ctx["agent"] = Unattached()
        from hera.shell.completion import install_completer

        install_completer(self.xsh, self)
        from xonsh.events import events

        def news(**_: Any) -> None:  # a function: xonsh marks its handlers with an attribute
            self.news()

        self._news_handler = news
        events.on_pre_prompt_format(news)
        env = self.xsh.env
        env["PROMPT_FIELDS"]["hera"] = self.prompt_field  # for a PROMPT of the user's own: "{hera}> "
        if prompt:
            # Callables, redrawn every second and on each key (a template's fields are computed
            # once per prompt, and the status line would stand still).
            env["PROMPT"] = self.prompt
            env["BOTTOM_TOOLBAR"] = self.status_line
            env["UPDATE_PROMPT_ON_KEYPRESS"] = True
            env["PROMPT_REFRESH_INTERVAL"] = 1.0

    def uninstall(self) -> None:
        from xonsh.events import events

        from hera.shell.completion import uninstall_completer

        if self._news_handler is not None:
            events.on_pre_prompt_format.discard(self._news_handler)
            self._news_handler = None
        self.detach(quiet=True)
        for name in self.names:
            self.xsh.aliases.pop(name, None)
        self.names.clear()
        fields = self.xsh.env.get("PROMPT_FIELDS")
        if fields is not None and fields.get("hera") == self.prompt_field:
            fields.pop("hera", None)
        self.xsh.ctx.pop("agent", None)
        uninstall_completer(self.xsh)
