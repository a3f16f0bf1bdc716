"""The controller's side of an up agent: :class:`AgentManager` and the files both ends share.

:mod:`.manager` (one object per agent: start, alive, signal, request,
shutdown), :mod:`.files` (the launch, the runtime files, the connection file
and the published live status, as pydantic models both ends use),
:mod:`.launch` (starting the process and waiting for it to be ready) and
:mod:`.client` (the control-socket client). Nothing here imports Taichi or
the agent process's modules.
"""

from hera.manager.manager import AgentManager

__all__ = ["AgentManager"]
