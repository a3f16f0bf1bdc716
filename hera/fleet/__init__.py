"""A fleet of agents on a Ray cluster (the optional ``hera[ray]`` extra).

:mod:`.cluster` connects to Ray and manages each agent's detached named
actor; :mod:`.host` is that actor's body, which runs the ordinary agent
runtime as its child on the node Ray placed it on; :mod:`.commands` is what
``up``, ``agents`` and ``down`` do when given ``--cluster`` (or the
``cluster`` setting, or ``HERA_CLUSTER``). Nothing here is imported unless a
cluster is named, and Ray only by :mod:`.cluster`.
"""
