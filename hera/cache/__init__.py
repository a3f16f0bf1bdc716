"""The cache of installed agents and what says whether they are up.

:mod:`.store` (the cache directory, its lock, install/uninstall/destroy),
:mod:`.pidfile` (pid-files and whether to believe them), :mod:`.paths`
(where caches and runtime directories are, and the checks that make them
safe), :mod:`.identities` (UUID, prefix and callsign resolution) and
:mod:`.callsigns` (how an agent is named). Nothing here imports Taichi.
"""
