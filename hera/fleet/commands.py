"""``up`` and ``agents`` on a cluster: the same output as on one machine, plus the node.

Every other command reaches a cluster agent through its manager
(:class:`hera.fleet.manager.ClusterAgentManager`, chosen by
:func:`hera.commands.target.managed`). The cache is the ``cache_dir``
setting, which for a cluster must be a path every node reaches (a shared
filesystem): ``up`` installs there, the agent saves there, ``down`` leaves
its state there, and an ``up`` from any node resumes it.
"""

from __future__ import annotations

from typing import Any


def up(ctx: Any, where: str) -> int:
    """Install the agent in the shared cache if needed and start its actor; the agent's node and status."""
    from hera import family as families, plan as plans
    from hera.commands import report
    from hera.commands.target import owner
    from hera.commands.up import _roll_back, _select_or_install
    from hera.errors import HeraError
    from hera.fleet import cluster, keys
    from hera.manager.files import Launch

    args = ctx.args
    if args.simulate or args.interactive or args.after is not None:
        raise HeraError("--simulate, --interactive and --after are not done for --cluster yet", hint="see docs/cluster.md")
    settings = ctx.settings()
    store, agent, fresh = _select_or_install(ctx)
    try:
        header = agent.header
        if header is None:
            raise HeraError(f"cannot up {agent.uuid[:8]}: {agent.error}", hint="its cached file is damaged")
        family = families.get(header.family.name, ctx.workdir)
        estimate = family.estimate(plans.validated_params(header, family, agent.path))
        device = "cpu" if settings.device in ("auto", "cpu") else "cuda:0"  # the GPU Ray gives the actor is its only one
        launch = Launch(
            uuid=agent.uuid,
            cache_path=agent.path.absolute(),
            runtime_dir=agent.path.parent,  # replaced on the node by its own runtime directory
            log_dir=keys.cluster_dir(store, "logs"),  # in the shared cache: 'hera logs' reads it from any machine
            workdir=ctx.workdir.absolute(),
            device=device,
            start_state="paused" if args.paused else "running",
            autosave_interval=settings.autosave_interval,
            pace=args.pace,
        )
        with store.locked():  # two ups of one agent: the second finds the first's actor, and its key intact
            cluster.vacate(where, agent.uuid)
            key = keys.new_key(store, agent.uuid)  # only once nothing runs with the key it replaces
            actor = cluster.start(
                where, launch.model_dump_json(), agent.uuid, key=key, owner=owner(),
                host_bytes=estimate.host_bytes, gpus=1 if device != "cpu" else 0,
            )
        found = cluster.ready(where, agent.uuid, actor)
    except BaseException:
        if fresh:
            _roll_back(store, agent)
        raise
    if fresh and not (args.quiet or args.json):  # as on one machine: --json prints one object, -q nothing
        ctx.out.write(f"installed {agent.callsign} {agent.uuid} -> {agent.path}\n")
    status = found.get("status") or {}
    facts = {
        "callsign": agent.callsign,
        "uuid": agent.uuid,
        "cluster": where,
        "node": found["node"],
        "ip": found["ip"],
        "pid": found["pid"],
        "device": device,
        "state": status.get("state"),
        "iteration": status.get("iteration"),
    }
    line = f"up {agent.callsign} {agent.uuid} on node {found['node'][:12]} ({found['ip']}) pid {found['pid']} device {device}"
    report.done(ctx, line, facts)
    return 0


def agents(ctx: Any, where: str) -> int:
    """The agents the cluster hosts, the user's own (``--all``: everyone's): the listing's columns, plus NODE and MOVED."""
    from hera.commands import target
    from hera.commands.agents import in_words
    from hera.fleet import cluster
    from hera.table import emit

    me = target.owner()
    headers = {agent.uuid: agent for _, agent in target.installed(ctx)}
    rows: list[dict[str, Any]] = []
    for uuid, found in cluster.describe_all(where, cluster.running(where)).items():
        owner = found["owner"] if found else None
        if owner != ctx.args.user if ctx.args.user is not None else not ctx.args.all and owner not in (me, None):
            continue  # another user's, as on one machine: --user NAME or --all lists theirs
        agent = headers.get(uuid)
        header = agent.header if agent is not None else None
        status = (found or {}).get("status") or {}
        rows.append(
            {
                "uuid": uuid,
                "callsign": agent.callsign if agent is not None else None,
                "family": header.family.name if header else None,
                "layout": header.layout if header else None,
                "owner": owner,
                "state": _state(found, status),
                "node": found["node"] if found else None,
                "ip": found["ip"] if found else None,
                "pid": found["pid"] if found else None,
                "iteration": status.get("iteration"),
                "rate": status.get("rate"),
                "learning": status.get("learning"),
                "device": status.get("device"),
                "moved": bool(found and found["restarted"]),
            }
        )
    rows.sort(key=lambda row: (row["callsign"] or "~", row["uuid"]))
    if ctx.args.json:
        emit(ctx.out, rows, [], True)
        return 0
    shown = [
        row
        | in_words(row)
        | {
            "node": row["node"][:12] if row["node"] else None,
            "moved": "moved" if row["moved"] else "",
        }
        for row in rows
    ]
    columns = [
        ("uuid", "UUID"), ("callsign", "CALLSIGN"), ("model", "FAMILY/LAYOUT"), ("owner", "OWNER"), ("state", "STATE"),
        ("node", "NODE"), ("ip", "IP"), ("pid", "PID"), ("iteration", "ITERATION"), ("rate", "IT/S"),
        ("accuracy", "ACC"), ("device", "DEVICE"), ("moved", "MOVED"),
    ]
    emit(ctx.out, shown, columns, False)
    return 0


def _state(found: dict[str, Any] | None, status: dict[str, Any]) -> str:
    """What the listing says: the agent's own word, else whether its actor is (re)starting or its agent ended."""
    if found is None:
        return "restarting"  # the actor does not answer: Ray is starting it (again), or its node is lost
    if not found["up"]:
        return f"exited {found['exit_code']} (see 'hera logs')"
    return str(status.get("shown") or status.get("state") or "up")
