"""The one-shot commands answer at once: they never import Taichi, xonsh, or anything they don't need.

Proven the honest way: run the command as a user would, under ``python -X
importtime``, and read every module the process imported from its log.
Only ``up`` (and what runs kernels) may import Taichi; only the shell
imports xonsh; listings and ``--help`` don't touch numpy either.
"""

from __future__ import annotations

import subprocess

import pytest

from herakit import World

HEAVY = {"taichi", "xonsh"}
NOT_FOR_LISTINGS = HEAVY | {"numpy"}


def imported(hera: World, *args: str) -> set[str]:
    """Top-level packages ``python -X importtime -m hera ARGS`` imported (it must succeed)."""
    done = subprocess.run(
        [hera.python, "-X", "importtime", "-m", "hera", *args],
        env=hera.env,
        cwd=hera.workdir,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    log, other = [], []
    for line in done.stderr.splitlines():
        (log if line.startswith("import time:") else other).append(line)
    assert done.returncode == 0 and not other, done.stderr
    # "import time: self [us] | cumulative | imported package", nested modules indented
    return {line.split("|")[2].strip().split(".")[0] for line in log[1:]}


@pytest.mark.parametrize(
    "args, forbidden",
    [
        (["--help"], NOT_FOR_LISTINGS),
        (["families"], NOT_FOR_LISTINGS),
        (["layouts"], NOT_FOR_LISTINGS),
        (["devices"], NOT_FOR_LISTINGS),
        (["--family", "abraxas", "--layout", "example", "build"], HEAVY),
    ],
    ids=["help", "families", "layouts", "devices", "build"],
)
def test_one_shot_commands_import_nothing_heavy(hera: World, args: list[str], forbidden: set[str]) -> None:
    modules = imported(hera, *args)

    assert "hera" in modules  # the log is real
    assert modules.isdisjoint(forbidden), sorted(modules & forbidden)
