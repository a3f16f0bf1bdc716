"""Learning you can watch on a live agent (issue 11, item 4): its rolling accuracy as a user sees it.

One real abraxas agent (the example layout, up as a daemon, paused) for the
module, fed a short sentence over and over through ``hera signal SIGTTIN``
as a user pipes a file in, then stepped until every byte was presented, in
two legs: the first few sentences (a fresh brain knows nothing) and the
rest (it has learnt them). Every figure is read as a user reads it: ``hera
agents --json`` (the published status, the agent never asked), ``hera
inspect``, the ``learning`` request, and the shell's ``status`` line,
``agent.decisions`` and ``plot``. The tick family does not predict its
input, so its agents show none of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from agent_helpers import build, client, reap_agents, tick_world, up_daemon, wait_for
from herakit import World
from terminalkit import Terminal, agents_json, open_terminal, opened_terminals

SENTENCE = "the quick brown fox jumps over the lazy dog. "
#: Sentences fed in all, and in the first leg (before it has learnt them).
REPEATS, EARLY = 30, 1
TICKS_PER_BYTE = 4  # the example layout's: one byte presented every 4 iterations


@dataclass(frozen=True)
class Fed:
    """The agent and what ``hera agents --json`` said of it after each leg."""

    callsign: str
    uuid: str
    early: dict
    late: dict


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with World(tmp_path_factory.mktemp("learning")) as hera:
        tick_world(hera)  # tick too; compiled kernels shared with the run's other tests
        yield hera
        reap_agents(hera)


def step(world: World, uuid: str, n: int) -> None:
    with client(world, uuid) as agent:
        agent.request("step", n=n, timeout=None)


def listed(world: World, callsign: str) -> dict:
    """The agent's row in ``hera agents --json`` once its status file says where the last step ended."""
    return agents_json(world)[callsign]


@pytest.fixture(scope="module")
def fed(world: World) -> Fed:
    built = world("--family", "abraxas", "--layout", "example", "--seed", "7", "build", "-o", "abx.json", check=True)
    callsign = re.search(r"^built (\S+) ", built.out, re.M)[1]
    up = up_daemon(world, "abx.json", "--paused")
    world("--uuid", up.uuid, "signal", "SIGTTIN", input=SENTENCE * REPEATS, check=True)
    early_units = EARLY * len(SENTENCE)
    step(world, up.uuid, early_units * TICKS_PER_BYTE)
    early = wait_for(lambda: (row := listed(world, callsign))["iteration"] == early_units * TICKS_PER_BYTE and row, what="the status")
    step(world, up.uuid, (REPEATS - EARLY) * len(SENTENCE) * TICKS_PER_BYTE)
    total = REPEATS * len(SENTENCE) * TICKS_PER_BYTE
    late = wait_for(lambda: (row := listed(world, callsign))["iteration"] == total and row, what="the status")
    return Fed(callsign, up.uuid, early, late)


def test_hera_agents_shows_the_accuracy_rising_as_the_agent_learns(world, fed):
    early, late = fed.early["learning"], fed.late["learning"]
    assert early["units"] == early["units_since_up"] == EARLY * len(SENTENCE)
    assert (late["window"], late["units"], late["units_since_up"]) == (1000, 1000, REPEATS * len(SENTENCE))
    # A fresh brain knows nothing of the sentence; thirty times over it has learnt it.
    assert early["accuracy"] < 0.3, early
    assert late["accuracy"] >= 0.8 and late["accuracy"] > early["accuracy"] + 0.5, late
    # The last 1,000 units are better than the whole run, whose start it did not know yet.
    assert late["accuracy_since_up"] < late["accuracy"]
    # The log-loss (bits per byte, from the output's own probabilities) falls from near the 8 bits of a guess.
    assert early["log_loss"] > 4 and late["log_loss"] < 1, (early, late)
    assert late["log_loss"] < late["log_loss_since_up"] < early["log_loss"]
    # The table's ACC column: the window's accuracy.
    table = world("agents", check=True).out
    header, row = table.splitlines()[0], next(line for line in table.splitlines() if fed.callsign in line)
    assert header.split()[header.split().index("ACC")] == "ACC"
    assert f" {late['accuracy']:.3f} " in row, table


def test_inspect_shows_the_live_figures_of_an_up_agent(world, fed):
    import json

    report = json.loads(world("inspect", fed.callsign, "--json", check=True).out)
    assert report["learning"] == fed.late["learning"]
    text = world("inspect", fed.callsign, check=True).out
    figures = fed.late["learning"]
    line = (
        f"  learning    accuracy {figures['accuracy']:.3f} over the last 1,000 units "
        f"({figures['accuracy_since_up']:.3f} over {REPEATS * len(SENTENCE):,} since up), "
        f"log-loss {figures['log_loss']:.3g} bits per unit ({figures['log_loss_since_up']:.3g} since up)"
    )
    assert line in text.splitlines(), text


def test_the_learning_request_gives_the_last_decisions_and_the_curve(world, fed):
    from hera.errors import AgentFailed

    with client(world, fed.uuid) as agent:
        reply = agent.request("learning", decisions=45, curve=True)
        with pytest.raises(AgentFailed, match="decisions"):
            agent.request("learning", decisions=1001)
    decisions = reply["decisions"]
    # The last sentence fed, in order, each byte with the iteration that presented it and what was predicted.
    assert bytes(d["unit"] for d in decisions) == SENTENCE.encode()
    last = REPEATS * len(SENTENCE) * TICKS_PER_BYTE - TICKS_PER_BYTE
    assert [d["iteration"] for d in decisions] == list(range(last - 44 * TICKS_PER_BYTE, last + 1, TICKS_PER_BYTE))
    hits = sum(d["predicted"] == d["unit"] for d in decisions)
    assert hits >= 30 and all(0 <= d["log_loss"] < 8 for d in decisions)
    # The curve: every unit since up in blocks, rising from the first block to the last.
    points = reply["curve"]["points"]
    assert sum(p["count"] for p in points) == REPEATS * len(SENTENCE) == points[-1]["units"]
    assert points[0]["accuracy"] < 0.3 and points[-1]["accuracy"] >= 0.8, points
    assert points[0]["log_loss"] > 4 > 1 > points[-1]["log_loss"], points


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    yield from opened_terminals()


def test_the_shell_shows_it_in_the_status_line_decisions_and_plot(world, fed, terminals):
    shell = open_terminal(world, terminals)
    shell.wait_prompt()
    shell.run(f"attach {fed.callsign}")
    figures = fed.late["learning"]
    line = shell.run("status")
    fed_units = REPEATS * len(SENTENCE)
    assert re.fullmatch(
        rf"{fed.callsign} paused  iteration {fed_units * TICKS_PER_BYTE}  0 it/s  fed {fed_units:,}  presented {fed_units:,}  "
        rf"answered [\d,]+  accuracy {figures['accuracy']:.3f}  log-loss {figures['log_loss']:.3g} bits  spikes\.\S+ .*",
        line,
    ), line
    assert shell.run("bytes(d['unit'] for d in agent.decisions(10))") == "b'lazy dog. '"
    refused = shell.run("agent.decisions(5000)")
    assert refused == "hera.errors.HeraError: decisions takes a whole number from 0 to 1,000, not 5000", refused  # one line
    out = shell.run("plot -n 8 --no-open -o learning.png")
    assert out == f"wrote learning.png with the learning curve of {fed_units:,} units presented since up", out
    assert (world.workdir / "learning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_family_that_does_not_predict_shows_no_learning(world):
    from hera.errors import AgentFailed

    build(world, "t.json")
    up = up_daemon(world, "t.json", "--paused")
    world("--uuid", up.uuid, "signal", "SIGTTIN", input="hello\n", check=True)
    step(world, up.uuid, 10)
    row = wait_for(lambda: (r := agents_json(world)[up.callsign])["iteration"] == 10 and r, what="the status")
    assert row["learning"] is None and row["io"]["presented"] == 6
    assert re.search(rf"{up.callsign} .* paused +\d+ +10 +0\.0 +- ", world("agents", check=True).out)
    with client(world, up.uuid) as agent, pytest.raises(AgentFailed, match="family tick does not predict its input"):
        agent.request("learning")


def test_the_scores_stay_bounded_and_exact_over_a_long_life():
    """What the agent keeps is bounded whatever it is fed, and merging the curve loses no count, hit or bit.

    Driven as the agent's loop drives it (batches of records, with and without
    log-losses: a family may give them or not), on records made up here, so
    that the totals can be counted independently.
    """
    import numpy as np

    from hera.agent.runner.learning import CURVE_POINTS, WINDOW, Learning

    rng = np.random.default_rng(5)
    learning, units, hits, bits = Learning(), 0, 0, []
    for batch in range(60):
        n = int(rng.integers(WINDOW, 9000))
        unit = rng.integers(0, 4, n)
        output = np.where(rng.random(n) < batch / 60, unit, -1)  # learning: ever more right
        rows = np.stack([np.arange(units, units + n) * 4, unit, output], axis=1).astype(np.int64)
        losses = rng.random(n) * 3 if batch % 2 else None  # a family may give them, or not
        learning.add(rows, losses)
        units, hits = units + n, hits + int((output == unit).sum())
        if losses is not None:
            bits.append(losses)
    summary, curve = learning.summary(), learning.curve()
    assert len(curve["points"]) <= CURVE_POINTS + 1 and curve["block"] > 50
    assert sum(p["count"] for p in curve["points"]) == units == summary["units_since_up"] == curve["points"][-1]["units"]
    assert summary["accuracy_since_up"] == round(hits / units, 4)
    assert summary["log_loss_since_up"] == round(float(np.concatenate(bits).mean()), 4)
    # The window is the last WINDOW units: the last batch gave log-losses, so every one has one.
    assert summary["units"] == WINDOW and summary["log_loss"] == round(float(bits[-1][-WINDOW:].mean()), 4)
    decisions = learning.decisions(WINDOW)
    assert [d["iteration"] for d in decisions] == list(range((units - WINDOW) * 4, units * 4, 4))
    assert summary["accuracy"] == round(sum(d["predicted"] == d["unit"] for d in decisions) / WINDOW, 4)
    assert decisions[-1]["log_loss"] == round(float(bits[-1][-1]), 4)

