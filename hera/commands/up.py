"""``hera up FILE`` / ``hera --uuid X up``: load an agent onto a device and start its inner loop."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hera.cli import AGENT_OPTIONS, agent_argument
from hera.commands import report
from hera.pace import argument as pace_argument

GLOBALS = (*AGENT_OPTIONS, "device")
HELP = "up an agent: load it onto a device and run its inner loop"
EXAMPLE = """\
examples:
  hera up 3f2a9c1e-....json            # installs the file on first up
  hera up 3f2a -d                      # an installed agent by UUID prefix or callsign; detach at once
  hera up brisk-otter --daemon --json  # what was started (pid, port, connection file) as JSON
  hera up 3f2a --simulate              # the loading plan, touching no device
  hera up 3f2a --silent &              # quiet, safe in the background

Normal mode prints a banner and holds the agent in this terminal until it goes
down: Ctrl-Z pauses the inner loop and opens the debug prompt (the hera shell,
attached; leaving it resumes the loop); Ctrl-C puts the agent in standby, and
a second Ctrl-C detaches, leaving it up. Closing the terminal, or SIGHUP or
SIGCONT sent to the agent from anywhere, detaches too. Ctrl-C while it loads
brings it up in standby. The agent runs in a process of its own; 'hera down'
from any terminal stops it and saves its complete state to the cache."""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    parser = sub.add_parser("up", help=HELP, description=HELP + ".", epilog=EXAMPLE)
    agent_argument(parser, "the agent to up (a file is installed on its first up)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("-d", "--daemon", action="store_true", help="detach at once; talk to it through its ports")
    mode.add_argument("--silent", action="store_true", help="print nothing (safe in the background)")
    parser.add_argument("--simulate", action="store_true", help="show the loading plan and whether it fits; start nothing")
    parser.add_argument("--paused", action="store_true", help="load, then wait paused at the current iteration")
    parser.add_argument(
        "--pace", type=pace_argument, metavar="PACE",
        help="how fast it may iterate: max, N/s or Fx (real time); kept with the agent (see 'hera pace')",
    )
    parser.add_argument(
        "--as-new", action="store_true", help="up FILE as a new agent (fresh UUID and callsign), e.g. a copy of an installed one"
    )
    parser.add_argument(
        "-i", "--interactive", action="store_true", help="open the hera shell attached to the agent (see --after)"
    )
    parser.add_argument(
        "--after", type=int, metavar="N", help="with --interactive: run N iterations first, then pause and open the prompt"
    )
    report.add_options(parser)
    return parser


@dataclass
class _Up:
    """An agent this command has brought up: what ``_hold`` needs to say so and hold it."""

    manager: Any
    process: Any
    status: dict[str, Any]
    launch: Any
    device: Any


def run(ctx: Any) -> int:
    from hera.cache.paths import runtime_dir
    from hera.commands import target
    from hera.errors import HeraError, UsageError

    where = ctx.settings().cluster
    if where is not None:  # a Ray cluster: its own module, so one machine's up never imports Ray
        from hera.fleet.commands import up as cluster_up

        return cluster_up(ctx, where)
    args = ctx.args
    if args.after is not None and (not args.interactive or args.after < 0):
        raise HeraError("--after N needs --interactive and N >= 0")
    if args.interactive and (args.daemon or args.silent):
        raise HeraError("--interactive cannot be combined with --daemon or --silent")
    if (args.json or args.quiet) and not args.daemon and ctx.shell is None:
        raise UsageError("--json and -q go with --daemon", hint="in the foreground, --silent prints nothing")
    runtime_dir(target.locations(ctx).runtime_dir)  # before anything is installed, or believed from it
    from hera import devices

    devices.find(ctx.settings().device)  # a device this host lacks: one line, and the cache never touched
    store, agent, fresh = _select_or_install(ctx)
    try:
        started = _start(ctx, store, agent)
    except BaseException:
        if fresh:  # installed by this up, which failed: the cache keeps no agent that nobody upped
            _roll_back(store, agent)
        raise
    if isinstance(started, int):  # --simulate: the plan, nothing started
        if fresh:
            _roll_back(store, agent)
        return started
    if fresh and not (args.silent or args.quiet or args.json):  # --json prints one object, -q nothing
        ctx.out.write(f"installed {agent.callsign} {agent.uuid} -> {agent.path}\n")
    return _hold(ctx, agent, started)


def _roll_back(store: Any, agent: Any) -> None:
    """Remove the agent this up installed and could not bring up (never one installed before it: see ``run``).

    ``destroy`` under the store's lock refuses an agent that is up, so an
    agent that did come up after all (a controller interrupted at the last
    moment) is never removed from under its process.
    """
    import contextlib

    from hera.errors import HeraError

    with contextlib.suppress(HeraError, OSError):
        store.destroy(agent)


def _start(ctx: Any, store: Any, agent: Any) -> _Up | int:
    """Check the agent can go up here (its file, the device, the room on it) and start it; an exit status for --simulate."""
    from hera import devices, family as families, plan as plans
    from hera.cache.paths import runtime_dir
    from hera.commands import target
    from hera.errors import Conflict, HeraError
    from hera.manager import AgentManager
    from hera.manager.files import Launch

    args = ctx.args
    where = target.locations(ctx)
    if agent.header is None:  # a damaged cached file: its previous good save, if kept, or say so
        agent.header = _previous_header(agent)
    if agent.header is None:
        raise HeraError(
            f"cannot up {agent.uuid[:8]}: {agent.error}",
            hint="its cached file is damaged; restore it from a copy, or remove it with 'hera destroy'",
        )
    header = agent.header
    manager = AgentManager(store, agent)
    live = manager.liveness()
    if live.up:
        raise Conflict(f"agent {header.callsign} ({agent.uuid[:8]}) is already up (pid {live.pid})")
    settings = ctx.settings()
    family = families.get(header.family.name, ctx.workdir)
    found = devices.all_devices()
    device = devices.find(settings.device, found)
    host = found[0] if device.kind != "cpu" else None
    others = plans.sharing(target.installed(ctx), agent.uuid, device, ctx.workdir)
    plan = plans.make(
        header, family, device, agent.size() or 0, others.names, host, source=agent.path, pending_bytes=others.pending_bytes
    )
    if args.simulate:
        ctx.out.write("\n".join(plan.report()) + "\n")
        return 0 if plan.fits is not False else 1
    if plan.fits is False:
        ctx.err.write("\n".join("  " + line for line in plan.report()) + "\n")
        raise HeraError(
            f"agent {header.callsign} needs more than {device.id} has free",
            hint="free the device, pick another with --device, or build a smaller layout",
        )
    runtime_dir(where.runtime_dir, create=True)
    launch = Launch(
        uuid=agent.uuid,
        cache_path=agent.path,
        runtime_dir=where.runtime_dir,
        log_dir=where.state_dir / "logs",
        workdir=ctx.workdir,
        device=device.id,
        daemon=args.daemon,
        # --after: paused until its breakpoint is set, or a fast agent would be past it already
        start_state="paused" if args.paused or args.interactive else "running",
        autosave_interval=settings.autosave_interval,
        pace=args.pace,
    )
    from hera.progress import meter

    # Checked again and claimed under the store's lock, which destroy and uninstall take too.
    # On a terminal the agent's phases (read, init, load, first save) are drawn while it comes up.
    with meter(ctx, header.callsign) as progress:
        process, status = manager.start(launch, progress)
    return _Up(manager, process, status, launch, device)


def _hold(ctx: Any, agent: Any, up: _Up) -> int:
    """The agent is up: say so, then hold it in this terminal, attach the shell to it, or let it go (--daemon)."""
    args = ctx.args
    header, manager, process, status, device = agent.header, up.manager, up.process, up.status, up.device
    if status.get("warning"):  # the agent fell back to the previous good save of a damaged cached file
        ctx.err.write(f"hera: warning: {status['warning']}\n")
        ctx.err.flush()
    if args.interactive and args.after:
        with manager.client() as client:
            client.request("breakpoint_add", kind="iteration", value=status["iteration"] + args.after)
            client.request("run")
    interrupted = bool(status.get("interrupted"))
    if ctx.shell is not None and not args.daemon:
        # In the hera shell the shell is the controller: attach and give the prompt back.
        handle = ctx.shell.attach(manager, pause=args.paused)
        ctx.out.write(f"up {header.callsign} {agent.uuid} (pid {process.pid}) on {device.id}; attached {handle!r}\n")
        return 0  # interrupted while it loaded: it is up in standby, held by this shell
    if args.daemon:
        from hera.cache.paths import RuntimeFiles

        connection = RuntimeFiles(up.launch.runtime_dir, agent.uuid).connection
        line = (
            f"up {header.callsign} {agent.uuid} pid {process.pid} device {device.id} "
            f"port {status.get('tcp_port')} connection {connection}"
        )
        facts = {
            "callsign": header.callsign,
            "uuid": agent.uuid,
            "pid": process.pid,
            "device": device.id,
            "port": status.get("tcp_port"),
            "data_port": status.get("data_port"),
            "connection": str(connection),
            "state": status.get("state"),
            "iteration": status.get("iteration"),
        }
        report.done(ctx, line, facts)
        return _interrupted(ctx, agent, status) if interrupted else 0
    if not args.silent:
        fallback = " (no usable CUDA GPU: the CPU)" if ctx.settings().device == "auto" and device.kind == "cpu" else ""
        loading = " (Ctrl-C while it loaded: nothing ran)" if interrupted else ""
        ctx.out.write(
            f"up {header.callsign} {agent.uuid} (pid {process.pid}) on {device.id}{fallback}, "
            f"{status['state']} from iteration {status['iteration']}{loading}\n"
            "Ctrl-Z: pause and prompt   Ctrl-C: standby, twice: detach   'hera down' in another terminal: stop and save\n"
        )
        ctx.out.flush()
    from hera.commands.foreground import stay
    from hera.manager.files import log_path

    log = log_path(up.launch.log_dir, agent.uuid)
    return stay(ctx, manager, process, quiet=args.silent, log=log, prompt=args.interactive, after=args.after)


def _interrupted(ctx: Any, agent: Any, status: dict[str, Any]) -> int:
    """Ctrl-C while the agent loaded and nothing holds it now: it is up in standby; say so, exit as interrupted."""
    short = agent.uuid[:8]
    ctx.err.write(
        f"hera: interrupted; {agent.callsign} is up in standby at iteration {status.get('iteration')}, nothing lost "
        f"('hera --uuid {short} signal SIGCONT' runs it, 'hera down {short}' stops it)\n"
    )
    ctx.err.flush()
    return 130


def _previous_header(agent: Any) -> Any:
    """The header of the previous good save kept beside a damaged cached file, or None (the agent loads it)."""
    from hera.errors import HeraError
    from hera.instance import read_header
    from hera.instance.atomic import previous_path

    try:
        return read_header(previous_path(agent.path), follow=False)
    except HeraError:
        return None


def _refuse_copy(file: Path, agent: Any) -> None:
    """A point-in-time copy of an installed agent must not shadow it (the spec: they diverge).

    The file ``build`` wrote (dead, no dynamic state) names its agent, as the
    spec's ``hera up <filename>`` does; a file with dynamic state that is not
    the cached agent itself is a copy, and upping it needs ``--as-new``.
    """
    from hera.errors import Conflict
    from hera.instance import read_header

    header = read_header(file)
    if header.dynamic and file.resolve() != agent.path.resolve():
        raise Conflict(
            f"{file} is a copy of installed agent {agent.callsign} ({agent.uuid[:8]}) from iteration {header.iteration}",
            hint=f"up it as a new agent with --as-new, or the installed agent with 'hera --uuid {agent.uuid[:8]} up'",
        )


def _select_or_install(ctx: Any) -> tuple[Any, Any, bool]:
    """The spec: upping a file installs it for the current user (once); whether this up installed it."""
    from hera.commands import target
    from hera.errors import NotFound

    file = target.positional(ctx, ctx.args.file)
    if file is None:
        return (*target.select(ctx, verb="up"), False)
    try:
        if not ctx.args.as_new:
            store, agent = target.select(ctx, file, verb="up")
            _refuse_copy(file, agent)
            return store, agent, False
    except NotFound:
        if ctx.args.simulate:  # a plan touches nothing: not the device, not the cache
            from hera.cache.store import Agent
            from hera.instance import read_header

            return target.user_store(ctx), Agent(file, "file", read_header(file)), False
    from hera.commands.install import check_params

    check_params(file, ctx.workdir)  # a file its family rejects never reaches the cache
    store = target.user_store(ctx)
    taken = {agent.callsign for _, agent in target.installed(ctx)}
    agent = store.install(file, owner=target.owner(), taken=taken, as_new=ctx.args.as_new)
    return store, agent, True
