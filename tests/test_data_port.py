"""The daemon's data port, used as any program would: the connection file, a socket, bytes in, records out.

One tick agent up with ``--daemon`` serves the module. tick presents one
byte per iteration and echoes it, so every record's unit and output are
known. The client is the documented example, docs/examples/data_client.py
(plain Python, no hera): run as a program, and imported for its
handshake where a test needs the socket itself.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import random
import select
import socket
import subprocess
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import psutil
import pytest

from agent_helpers import (
    build,
    log_file,
    module_tick_world,
    request,
    runtime_dir,
    up_daemon,
    wait_for,
)
from hera.agent.dataport import CHUNK, WINDOW
from hera.cache.paths import RuntimeFiles
from hera.manager.files import LiveStatus

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "data_client.py"


def example() -> ModuleType:
    """The example client as a module (its ``connect`` and ``digest``), loaded from the docs."""
    spec = importlib.util.spec_from_file_location("data_client", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    yield from module_tick_world(tmp_path_factory, "data")


@pytest.fixture(scope="module")
def agent(world):
    """A running tick daemon; each test leaves it running with nothing of its own queued or unread."""
    build(world, "d.json")
    return up_daemon(world, "d.json")


def records_and_end(lines: list[bytes]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A stream's record lines, and its end line (the last)."""
    *records, end = (json.loads(line) for line in lines)
    assert "end" in end and all("end" not in r for r in records), end
    return records, end


def check_records(records: list[dict[str, Any]], payload: bytes) -> None:
    """One record per byte, in order, each echoed, at rising iterations."""
    assert bytes(r["unit"] for r in records) == payload
    assert all(r["output"] == r["unit"] for r in records)
    iterations = [r["iteration"] for r in records]
    assert iterations == sorted(set(iterations))


def test_the_example_client_streams_any_bytes_and_gets_one_record_per_byte_in_order(world, agent):
    info = json.loads(agent.connection.read_text())
    assert info["data_port"] == request(world, agent.uuid, "status")["data_port"] != info["port"]
    assert LiveStatus.read(RuntimeFiles(runtime_dir(world), agent.uuid).status).data_port == info["data_port"]
    payload = bytes(range(256)) * 8 + random.Random(7).randbytes(8192)  # every byte value, binary noise

    client = subprocess.run([sys.executable, str(EXAMPLE), str(agent.connection)], input=payload, capture_output=True, timeout=120)

    assert client.returncode == 0, client.stderr.decode()
    records, end = records_and_end(client.stdout.splitlines())
    check_records(records, payload)
    assert end == {"end": "done", "fed": len(payload), "records": len(payload)}


def test_two_streams_at_once_each_get_the_records_of_their_own_bytes_in_order(world, agent):
    client = example()
    payloads = [bytes(range(256)) * 24, bytes(reversed(range(256))) * 24]
    streams = [client.connect(str(agent.connection)) for _ in payloads]
    senders = [threading.Thread(target=client.send, args=(sock, io.BytesIO(data))) for (sock, _), data in zip(streams, payloads, strict=True)]
    for sender in senders:
        sender.start()
    for (sock, lines), data in zip(streams, payloads, strict=True):
        records, end = records_and_end(list(lines))
        check_records(records, data)
        assert end == {"end": "done", "fed": len(data), "records": len(data)}
        sock.close()
    for sender in senders:
        sender.join()


def test_a_peer_without_the_key_is_refused_and_nothing_it_sends_is_fed(world, agent):
    info = json.loads(agent.connection.read_text())
    key = bytes.fromhex(info["key"])
    digest = example().digest
    fed = request(world, agent.uuid, "status")["io"]["fed"]

    def attempt(answer: Any) -> list[dict[str, Any]]:
        """Connect, answer the hello, send some bytes and half-close; every line the agent sent back."""
        with socket.create_connection(("127.0.0.1", info["data_port"]), timeout=10) as sock:
            lines = sock.makefile("rb")
            hello = json.loads(lines.readline())
            assert hello["hera"] == "data" and hello["uuid"] == agent.uuid
            assert hello["proof"] == digest(key, b"agent", hello["nonce"])  # the agent proves itself first
            sock.sendall(answer(hello["nonce"]) + b"after the line")
            sock.shutdown(socket.SHUT_WR)
            return [json.loads(line) for line in lines]

    good = attempt(lambda nonce: digest(key, b"data", nonce).encode() + b"\n")
    assert good[0] == {"ok": True} and good[-1] == {"end": "done", "fed": 14, "records": 14}
    check_records(good[1:-1], b"after the line")
    fed += 14
    wrong = [
        lambda nonce: digest(os.urandom(32), b"data", nonce).encode() + b"\n",  # another key
        lambda nonce: digest(key, b"agent", nonce).encode() + b"\n",  # the agent's own proof, sent back
        lambda nonce: digest(key, b"data", "0" * 32).encode() + b"\n",  # another connection's nonce
        lambda nonce: os.urandom(600),  # no line at all
    ]
    for answer in wrong:
        refused = attempt(answer)
        assert len(refused) == 1 and refused[0]["ok"] is False and refused[0]["error"].startswith("wrong key"), refused
    status = request(world, agent.uuid, "status")
    assert (status["pid"], status["io"]["fed"]) == (agent.pid, fed)
    log = log_file(world, agent.uuid).read_text()
    assert "refused a data connection" in log and "Traceback" not in log


def test_a_producer_faster_than_the_brain_is_held_and_a_down_and_up_mid_stream_lose_nothing_fed(world, agent):
    """Paused, the agent takes at most a window of bytes and the producer is held; after down and up every byte it took is presented in order."""
    request(world, agent.uuid, "pause")
    request(world, agent.uuid, "read")  # nothing of another test's left
    before = request(world, agent.uuid, "status")["io"]
    memory = psutil.Process(agent.pid).memory_info().rss
    block = bytes(i % 251 for i in range(251 * 4096))  # the stream is byte i = i % 251, for ever
    offered = 256 << 20

    sock, lines = example().connect(str(agent.connection))
    sock.setblocking(False)
    sent = 0
    while sent < offered:
        try:
            sent += sock.send(block[sent % len(block) :])
        except BlockingIOError:
            if not select.select([], [sock], [], 2.0)[1]:
                break  # the socket has taken nothing for 2 s: held (or the agent is slow: the window says which)

    def full_window() -> dict | None:  # it reads one more chunk only while that fits in the window
        counts = request(world, agent.uuid, "status")["io"]
        return counts if counts["fed"] - before["fed"] > WINDOW - CHUNK else None

    counts = wait_for(full_window, 60, "the agent to take a window's worth")
    taken = counts["fed"] - before["fed"]
    assert sent < offered  # held: TCP flow control, not the agent's memory, took the rest
    assert taken <= WINDOW and counts["pending"] == before["pending"] + taken
    assert psutil.Process(agent.pid).memory_info().rss - memory < 64 << 20

    world("down", agent.uuid, check=True)  # mid-stream
    sock.setblocking(True)
    sock.settimeout(30)
    records, end = records_and_end(list(lines))
    sock.close()
    assert records == [] and end == {"end": "down", "fed": taken, "records": 0}  # exactly what it took

    up_daemon(world, "d.json")
    wait_for(lambda: request(world, agent.uuid, "status")["io"]["pending"] == 0, 120, "the queued bytes to be presented")
    got = request(world, agent.uuid, "read", records=True)["records"]
    check_records(got, bytes(i % 251 for i in range(taken)))
