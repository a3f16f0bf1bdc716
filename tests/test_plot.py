"""``plot`` asks the agent for what it draws: histograms counted in the agent, a bounded raster window.

One tick agent of a million neurons (56 MB of state) for the module: big
enough that pulling its arrays into the shell, as ``plot`` once did, shows in
the shell's peak memory, and that its ring (12 Mi values) is counted in more
than one chunk. The histogram the agent answers is checked against numpy on
the same arrays, taken through ``state`` (the one request that does hand
arrays over).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_helpers import build, client, module_tick_world, snapshot, up_daemon
from herakit import World
from terminalkit import Terminal, open_terminal, opened_terminals

NEURONS = 1 << 20
DELAY = 12
#: The state the agent holds: int32 counts, float32 weights, an int32 ring DELAY deep.
STATE_BYTES = NEURONS * (4 + 4 + 4 * DELAY)


#: A figure like plot's, drawn before measuring: matplotlib's own memory is not what plot received.
WARM_UP = """
import io, matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
figure = plt.figure(figsize=(8, 8))
figure.add_subplot(2, 1, 1).scatter(range(20000), range(20000), s=1, marker="|")
figure.add_subplot(2, 1, 2).stairs([1, 2], [0, 1, 2], fill=True)
figure.tight_layout()
figure.savefig(io.BytesIO(), dpi=100)
plt.close(figure)
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from module_tick_world(tmp_path_factory, "plot")


@pytest.fixture(scope="module")
def agent(world: World):
    """The big tick agent, run a little so its counts and ring hold spikes, then paused."""
    build(world, "big.json", "--set", f"neurons={NEURONS}", "--set", f"delay={DELAY}", "--set", "rate=0.001")
    up = up_daemon(world, "big.json", "--paused")
    with client(world, up.uuid) as control:
        control.request("step", n=30, timeout=120)
    return up


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    yield from opened_terminals()


def test_histogram_is_counted_in_the_agent_and_matches_numpy_on_the_same_arrays(world, agent):
    with client(world, agent.uuid) as control:
        reply = control.request("histogram", names=["ring", "counts"], bins=7, timeout=120)
        everything = control.request("histogram", bins=3, nonzero=False, timeout=120)
    _, arrays = snapshot(world, agent.uuid)
    assert sorted(reply["arrays"]) == ["counts", "ring"]
    for name, got in reply["arrays"].items():
        same_as_numpy(got, arrays[name], 7, nonzero=True)
    # No names: every array (bar the empty input queue), zeros counted too.
    assert sorted(everything["arrays"]) == sorted(arrays)
    for name in ("counts", "ring", "weights"):
        same_as_numpy(everything["arrays"][name], arrays[name], 3, nonzero=False)
    assert everything["arrays"]["pending"]["counts"] == [] and everything["arrays"]["pending"]["size"] == 0


def same_as_numpy(got: dict, array, bins: int, nonzero: bool) -> None:
    """What the agent counted is what numpy counts on the same array."""
    import numpy as np

    values = array.ravel()
    kept = values[values != 0] if nonzero else values
    assert kept.size > 0  # the agent ran: there is something to count
    counts, edges = np.histogram(kept, bins=bins, range=(kept.min(), kept.max()))
    assert got["counts"] == counts.tolist()
    assert np.allclose(got["edges"], edges)
    assert (got["min"], got["max"]) == (kept.min().item(), kept.max().item())
    zeros = int(np.count_nonzero(values == 0))
    assert (got["size"], got["counted"], got["zeros"], got["nonfinite"]) == (values.size, kept.size, zeros, 0)
    assert got["dtype"] == str(values.dtype) and got["shape"] == list(array.shape)


def test_histogram_and_record_arguments_are_checked(world, agent):
    from hera.errors import AgentFailed

    with client(world, agent.uuid) as control:
        for args, why in [
            ({"names": ["ring"], "match": "r*"}, "names or match, not both"),
            ({"bins": 0}, "bins"),
            ({"names": ["rign"]}, "no state array 'rign'; arrays: counts, pending, ring, weights"),
            ({"bins": "5"}, "bins"),
        ]:
            with pytest.raises(AgentFailed, match=why):
                control.request("histogram", **args)
        with pytest.raises(AgentFailed, match="end must be greater than first"):
            control.request("record", n=1, first=10, end=10)
        assert control.request("histogram", match="w*")["arrays"].keys() == {"weights"}


def test_record_lists_only_the_window_and_at_most_limit_spikes(world, agent):
    with client(world, agent.uuid) as control:
        window = control.request("record", n=20, first=1000, end=300_000, limit=50, timeout=120)
        whole = control.request("record", n=3, timeout=120)
    listed = [i for row in window["spikes"] for i in row]
    assert all(1000 <= i < 300_000 for i in listed)
    assert len(listed) == 50 and window["truncated"] is True  # about 300 spikes each iteration in the window
    assert len(window["counts"]) == 20 and sum(window["counts"]) > 50
    assert all(len(row) <= count for row, count in zip(window["spikes"], window["counts"], strict=True))
    assert (window["first"], window["end"], window["neurons"]) == (1000, 300_000, NEURONS)
    assert whole["truncated"] is False and whole["counts"] == [len(row) for row in whole["spikes"]]
    assert (whole["first"], whole["end"]) == (0, NEURONS)


def test_plot_draws_a_big_brain_without_taking_its_arrays_into_the_shell(world, agent, terminals):
    shell = open_terminal(world, terminals)
    shell.wait_prompt()
    shell.run(f"attach {agent.callsign}")
    # matplotlib's own cost paid first, so what plot adds to the shell's peak is what it received.
    (world.workdir / "warm.py").write_text(WARM_UP)
    shell.run('exec(open("warm.py").read())')
    peak = 'int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) * 1024'
    before = int(shell.run(peak))
    out = shell.run("plot -n 20 --no-open -o big.png")
    assert out == "wrote big.png", out
    assert (world.workdir / "big.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grown = int(shell.run(peak)) - before
    assert grown < STATE_BYTES // 3, f"the shell's peak memory grew by {grown:,} bytes plotting {STATE_BYTES:,} of state"
    # A window of neurons, and a bad one refused in one line.
    assert shell.run("plot -n 5 --neurons 100:5000 --no-open -o window.png") == "wrote window.png"
    assert (world.workdir / "window.png").is_file()
    refused = shell.run("plot --neurons 9:3 --no-open")
    assert "is not a neuron window FIRST:END" in refused and "Traceback" not in refused, refused
