"""A fleet of agents on a Ray cluster (the optional ``hera[ray]`` extra).

:mod:`.cluster` connects to Ray and manages each agent's detached named
actor; :mod:`.host` is that actor's body, which runs the ordinary agent
runtime (in daemon mode) as its child on the node Ray placed it on;
:mod:`.manager` is the agent manager every command uses on a cluster agent
(requests straight to the agent's signed port, signals through its actor);
:mod:`.keys` keeps the owner's key of each agent; :mod:`.commands` is what
``up`` and ``agents`` do on a cluster. Nothing here is imported unless a
cluster is named (``--cluster``, ``HERA_CLUSTER`` or the ``cluster``
setting), and Ray only by :mod:`.cluster`.
"""
