"""``xontrib load hera``: hera's aliases and the attached-agent object in any xonsh session.

The loader lives here; ``xontrib/hera.py`` (a namespace module xonsh looks
in) only forwards to it. hera registers no ``xonsh.xontribs`` entry point on
purpose: xonsh autoloads those into every session, and hera's aliases
(``up``, ``down``, ``build`` …) must appear only where a user asks for them.
Loading imports no Taichi, numpy or pydantic (tests/test_shell.py checks).
"""

from __future__ import annotations

from typing import Any

_KEY = "hera_session"


def load(xsh: Any, **kwargs: Any) -> dict[str, Any]:
    from hera.shell.session import Session

    if _KEY in xsh.ctx:
        return {}
    session = Session(xsh)
    session.install(prompt=False)
    xsh.ctx[_KEY] = session
    return {}


def unload(xsh: Any, **kwargs: Any) -> dict[str, Any]:
    session = xsh.ctx.pop(_KEY, None)
    if session is not None:
        session.uninstall()
    return {}
