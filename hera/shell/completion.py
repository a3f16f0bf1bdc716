"""Tab completion for hera's aliases and for ``hera`` typed in any xonsh session.

Subcommands and their options come from the one parser; the values after
``--family``, ``--layout``, ``--uuid``, ``--callsign`` and ``--identifier``
come from the installed families and agents, read when Tab is pressed; so
does the ID after ``attach``. Nothing is imported until the first Tab.
"""

from __future__ import annotations

from functools import cache
from typing import Any

NAME = "hera"


@cache
def _options() -> dict[str, list[str]]:
    """Subcommand → its option strings, from the shared parser."""
    import argparse

    from hera import cli

    parser = cli.build_parser()
    result: dict[str, list[str]] = {"": sorted(o for o in parser._option_string_actions if o.startswith("--"))}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                result[name] = sorted(o for o in sub._option_string_actions if o.startswith("--"))
    return result


def _values(option: str) -> list[str]:
    """What may follow an option that takes a family, layout or agent."""
    from hera import cli
    from hera.errors import HeraError

    try:
        if option in ("--family", "--layout"):
            from hera.family import discover

            families = discover()
            if option == "--family":
                return sorted(families)
            return sorted({layout for e in families.values() if e.family for layout in e.family.layouts})
        if option in ("--uuid", "--callsign", "--identifier"):
            from hera.commands import target

            agents = [agent for _, agent in target.installed(cli.context("complete"))]
            uuids = [a.uuid[:8] for a in agents]
            names = [a.callsign for a in agents]
            return {"--uuid": uuids, "--callsign": names}.get(option, uuids + names)
    except HeraError:
        return []
    return []


def candidates(words: list[str], index: int, prefix: str, aliases: set[str]) -> set[str] | None:
    """Completions for the word at ``index`` of a command line, or None when it is not ours."""
    if not words or (words[0] != NAME and words[0] not in aliases):
        return None
    options = _options()
    if words[0] == "attach" and not prefix.startswith("-") and words[index - 1] not in _TAKES_VALUE:
        return {v for v in _values("--identifier") if v.startswith(prefix)}  # attach [ID]
    if words[0] == NAME:
        sub = next((w for w in words[1:index] if w in options), "")
        if not sub and not prefix.startswith("-") and (index == 1 or words[index - 1] not in _TAKES_VALUE):
            return {s for s in options if s and s.startswith(prefix)}
    else:
        sub = words[0] if words[0] in options else ""
    previous = words[index - 1] if index - 1 < len(words) else ""
    if previous in _TAKES_VALUE:
        return {v for v in _values(previous) if v.startswith(prefix)}
    if words[0] in _OWN_OPTIONS:
        return {o for o in _OWN_OPTIONS[words[0]] if o.startswith(prefix)} if prefix.startswith("-") else None
    if prefix.startswith("-") or sub:
        return {o for o in options.get(sub, []) + options[""] if o.startswith(prefix)}
    return None


#: The shell's own commands (not subcommands of the one-shot ``hera``) and their options.
_OWN_OPTIONS = {
    "attach": ["--callsign", "--force", "--help", "--pause", "--uuid"],
    "detach": ["--help"],
    "status": ["--help"],
    "plot": ["--help", "--iterations", "--no-open", "--output"],
}


_TAKES_VALUE = {"--family", "--layout", "--uuid", "--callsign", "--identifier", "--device", "--seed", "--set", "--cache-dir"}


def install_completer(xsh: Any, session: Any) -> None:
    from xonsh.completers.completer import add_one_completer
    from xonsh.completers.tools import contextual_command_completer

    @contextual_command_completer
    def hera_completer(command: Any) -> Any:
        words = [arg.value for arg in command.args]
        index = command.arg_index
        if index < 1:
            return None
        while len(words) <= index:
            words.append("")
        return candidates(words, index, command.prefix, set(session.names))

    add_one_completer("hera", hera_completer, "start")


def uninstall_completer(xsh: Any) -> None:
    completers = getattr(xsh, "completers", None)
    if completers is not None:
        completers.pop("hera", None)
