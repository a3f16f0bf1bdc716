"""``--cluster`` where Ray is not installed: one line that says what to install, and nothing installed or started.

Runs everywhere: Ray is hidden from hera by a ``ray`` package on
``PYTHONPATH`` whose import fails as a missing one does.
"""

from __future__ import annotations

import json

from agent_helpers import build, tick_world
from herakit import World, one_error_line


def test_cluster_without_ray_is_one_line_and_leaves_the_cache_as_it_was(hera: World) -> None:
    tick_world(hera)
    build(hera, "t.json")
    hidden = hera.workdir / "no-ray"
    (hidden / "ray").mkdir(parents=True)
    (hidden / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {"PYTHONPATH": str(hidden), "HERA_CLUSTER": "127.0.0.1:6379"}
    for args in (("up", "t.json"), ("agents",), ("down", "t.json")):
        one_error_line(hera(*args, env=env), "--cluster needs Ray", "pip install 'hera[ray]'", rc=1)
    assert json.loads(hera("agents", "--json", check=True).out) == []  # the up installed nothing
