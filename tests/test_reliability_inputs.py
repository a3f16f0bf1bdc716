"""Fuzzing with hypothesis: the instance loader, the config loader and the control protocol.

Every malformed input must end in hera's own clean error (``HeraError``,
``ProtocolError``), never another exception, a hang or a changed agent.
Examples are bounded (``max_examples``, no deadline surprises) so the suite
stays in CI; the counts tried are noted for docs/reliability.md.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from agent_helpers import build, reap_agents, request, tick_world, up_daemon
from herakit import World
from reliability_kit import note

FAST = settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@pytest.fixture(scope="module")
def real_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real instance file with dynamic state, as a down agent leaves it (built in-process, no agent)."""
    import numpy as np

    from hera.instance import Header, save

    directory = tmp_path_factory.mktemp("real")
    from hera.instance import load

    # Any instance hera wrote will do; the tick family's build is the smallest.
    world = World(directory)
    tick_world(world)
    built = build(world)
    instance = load(built.path)
    instance.arrays["counts"] = np.arange(64, dtype=np.int32)
    instance.arrays["ring"] = np.linspace(0, 1, 96, dtype=np.float32).reshape(3, 32)
    path = directory / "real.json"
    save(path, instance.header, instance.arrays)
    world.close()
    return path.read_bytes()


def _load_clean(data: bytes, path: Path) -> None:
    from hera.errors import HeraError
    from hera.instance import load

    path.write_bytes(data)
    try:
        load(path)
    except HeraError:
        pass


def test_instance_loader_on_mutated_real_files(real_file: bytes, tmp_path: Path) -> None:
    """Flipped bytes, cuts, splices: a clean HeraError or the identical brain, never anything else."""
    from hera.errors import HeraError
    from hera.instance import load

    path = tmp_path / "x.json"
    path.write_bytes(real_file)
    good = load(path)
    tried = 0

    @FAST
    @given(st.lists(st.tuples(st.integers(0, len(real_file) - 1), st.integers(0, 255)), min_size=1, max_size=4), st.integers(0, len(real_file)))
    def mutate(edits: list[tuple[int, int]], cut: int) -> None:
        nonlocal tried
        tried += 1
        data = bytearray(real_file[: max(cut, 1)] if cut % 3 == 0 else real_file)
        for at, value in edits:
            if at < len(data):
                data[at] = value
        path.write_bytes(bytes(data))
        try:
            loaded = load(path)
        except HeraError:
            return
        # Accepted: then it is the same brain (a changed byte in whitespace or an ignored spot), never a wrong one.
        # (An edited array *name* loads as another name: the family then refuses the missing array when it
        # builds its runtime; the per-array checksums cover the data, dtype and shape.)
        for name, array in good.arrays.items():
            if name in loaded.arrays:
                assert loaded.arrays[name].tobytes() == array.tobytes(), f"silently wrong array {name}"

    mutate()
    note("fuzz: instance loader", inputs=tried)


def test_instance_loader_on_random_bytes_and_json(tmp_path: Path) -> None:
    tried = 0
    json_ish = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(["format", "format_version", "header", "arrays", "dtype", "shape", "data", "encoding", "crc32", "uuid"]) | st.text(max_size=8), inner, max_size=5),
        max_leaves=20,
    )

    @FAST
    @given(st.binary(max_size=300) | json_ish.map(lambda v: json.dumps(v).encode()))
    def feed(data: bytes) -> None:
        nonlocal tried
        tried += 1
        _load_clean(data, tmp_path / "r.json")

    feed()
    note("fuzz: instance loader", inputs=tried)


def test_config_loader_on_random_json(tmp_path: Path) -> None:
    from hera import config
    from hera.errors import HeraError

    tried = 0
    keys = st.sampled_from(["device", "autosave_interval", "cache_dir", "params", "families", "layout", "family", "seed", "runtime_dir", "tcp_host"]) | st.text(max_size=10)
    values = st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=10,
    )
    work = tmp_path / "w"
    work.mkdir()

    @FAST
    @given(st.dictionaries(keys, values, max_size=5).map(json.dumps) | st.text(max_size=80), st.dictionaries(st.sampled_from(["HERA_DEVICE", "HERA_AUTOSAVE_INTERVAL", "HERA_PARAMS", "HERA_SEED"]), st.text(max_size=10), max_size=2))
    def feed(text: str, environ: dict[str, str]) -> None:
        nonlocal tried
        tried += 1
        (work / "hera.json").write_text(text)
        try:
            config.read_file(work / "hera.json")
            config.gather({}, workdir=work, environ=environ)
        except HeraError:
            pass

    feed()
    note("fuzz: config loader", inputs=tried)


def test_protocol_decoders_on_random_bytes() -> None:
    from hera.agent import protocol

    tried = 0
    verifier = protocol.Verifier(b"k" * 32, "nonce")
    ops = st.sampled_from(["status", "step", "feed", "copy", "breakpoint_add", "down", "nope"])
    requests = st.fixed_dictionaries({"id": st.integers(-2, 2**60), "op": ops}, optional={"args": st.dictionaries(st.sampled_from(["n", "text", "path", "kind", "value", "x"]), st.integers() | st.text(max_size=8) | st.none(), max_size=3)})

    @FAST
    @given(st.binary(max_size=200) | requests.map(lambda r: json.dumps(r).encode()))
    def feed(line: bytes) -> None:
        nonlocal tried
        tried += 1
        for decode in (protocol.decode_request, verifier.open):
            try:
                decode(line)
            except protocol.ProtocolError:
                pass

    feed()
    note("fuzz: control protocol", inputs=tried)


@pytest.fixture
def world(hera: World) -> World:
    tick_world(hera)
    yield hera
    reap_agents(hera)


def test_a_live_agent_fed_garbage_on_its_socket_and_port_keeps_running(world: World) -> None:
    import random

    rng = random.Random(7)
    built = build(world)
    up = up_daemon(world, str(built.path))
    connection = json.loads(up.connection.read_text())
    before = request(world, up.uuid, "status")["iteration"]
    lines = 0
    for round_ in range(40):
        garbage = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 300))) for _ in range(5)]
        garbage.append(b'{"id": 1, "op": "down"}')  # unsigned on TCP: must be refused, never obeyed
        for kind in ("unix", "tcp"):
            sock = socket.socket(socket.AF_UNIX) if kind == "unix" else socket.create_connection(("127.0.0.1", connection["port"]), timeout=5)
            if kind == "unix":
                sock.connect(str(world.runtime_dir / "hera" / f"{up.uuid}.sock"))
            sock.settimeout(5)
            with sock:
                try:
                    for line in garbage if kind == "tcp" else garbage[:-1]:
                        sock.sendall(line.replace(b"\n", b" ") + b"\n")
                        lines += 1
                    sock.shutdown(socket.SHUT_WR)
                    while sock.recv(65536):
                        pass
                except OSError:
                    pass  # the agent may close a connection that misbehaves: that is its right
    after = request(world, up.uuid, "status")
    assert after["state"] == "running" and after["iteration"] > before
    time.sleep(0.2)
    assert request(world, up.uuid, "status")["iteration"] > after["iteration"]
    world("down", check=True)
    note("fuzz: live agent", inputs=lines)
