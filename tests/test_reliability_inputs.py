"""Fuzzing with hypothesis: the instance loader, the config loader and the control protocol.

Every malformed input must end in hera's own clean error (``HeraError``,
``ProtocolError``), never another exception, a hang or a changed agent.
Examples are bounded so the suite stays in CI (``HERA_FUZZ_EXAMPLES``, 600
per target by default, derandomized); ``scripts/fuzz.py`` runs the same
targets ten times longer or more, with a recorded seed (``HERA_FUZZ_SEED``),
a memory ceiling and a time limit. The counts tried are noted for
docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, seed, settings, strategies as st

from agent_helpers import build, reap_agents, request, tick_world, up_daemon
from herakit import World
from reliability_kit import note

F = TypeVar("F", bound=Callable[..., Any])

EXAMPLES = int(os.environ.get("HERA_FUZZ_EXAMPLES", "600"))
SEED = os.environ.get("HERA_FUZZ_SEED")
_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=SEED is None,  # the suite: the same inputs every run; the fuzz script: the seed it records
    database=None,
)


def FAST(test: F) -> F:
    """Bounded, reproducible fuzzing: the suite's fixed inputs, or the recorded seed of a long run."""
    test = _SETTINGS(test)
    return seed(int(SEED))(test) if SEED is not None else test


@pytest.fixture(scope="module")
def real_file(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real instance file with dynamic state, as a down agent leaves it (built in-process, no agent)."""
    import numpy as np

    from hera.instance import save

    directory = tmp_path_factory.mktemp("real")
    from hera.instance import load

    # Any instance hera wrote will do; the tick family's build is the smallest.
    world = World(directory)
    tick_world(world)
    built = build(world)
    instance = load(built.path)
    instance.arrays["counts"] = np.arange(64, dtype=np.int32)
    instance.arrays["ring"] = np.linspace(0, 1, 96, dtype=np.float32).reshape(3, 32)
    # Sparse enough that the codec compresses it: the zstd frames are fuzzed too.
    sparse = np.zeros((64, 64), np.float32)
    sparse.flat[::97] = np.linspace(0.5, 2.0, sparse.size // 97 + 1, dtype=np.float32)
    instance.arrays["weights.sparse"] = sparse
    path = directory / "real.json"
    save(path, instance.header, instance.arrays)
    world.close()
    data = path.read_bytes()
    assert b'"encoding": "zstd"' in data, "the sparse array was not compressed: nothing of format 3 is fuzzed"
    return data


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


#: Claims a hostile header may make: each must be refused before anything is allocated or looped over.
HOSTILE_INTS = st.sampled_from([-(2**63), -1, 0, 1, 2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 10**30]) | st.integers()


def _deep(depth: int, opener: str = "[", closer: str = "]") -> str:
    return opener * depth + closer * depth


def _hostile_value(field: str) -> st.SearchStrategy[Any]:
    if field == "shape":
        return st.lists(HOSTILE_INTS, max_size=5) | st.sampled_from([None, "lots", [1.5], [[2]], {}])
    if field == "dtype":
        return st.sampled_from(["<f4", "<f8", ">f4", "<i4", "|u1", "<U8", "O", "V16", "<c16", "", "float32"]) | st.text(max_size=6)
    if field == "encoding":
        return st.sampled_from(["fill", "base64", "raw", "zstd", "", None]) | st.text(max_size=6)
    if field == "data":
        return st.sampled_from(["", "AAAAAA==", "AA", "=" * 8, "!!!!"]) | st.text(max_size=16)
    return HOSTILE_INTS | st.none() | st.text(max_size=6)  # crc32 and anything else


def test_instance_loader_on_hostile_array_entries(real_file: bytes, tmp_path: Path) -> None:
    """Shapes past 2**63, negative dims, wrong types, renamed arrays: refused fast, or the identical brain."""
    from hera.errors import HeraError
    from hera.instance import load, read_header, verify_file

    document = json.loads(real_file)
    names = sorted(document["arrays"])
    path = tmp_path / "h.json"
    path.write_bytes(real_file)
    good = load(path)
    tried = 0

    @FAST
    @given(st.sampled_from(names), st.sampled_from(["shape", "dtype", "encoding", "data", "crc32", "rename", "drop"]), st.data())
    def claim(name: str, field: str, data: st.DataObject) -> None:
        nonlocal tried
        tried += 1
        changed = json.loads(real_file)
        entries = changed["arrays"]
        if field == "rename":  # one character of the name changed, everything else as written
            at = data.draw(st.integers(0, len(name) - 1))
            other = name[:at] + chr(ord(name[at]) ^ 1) + name[at + 1:]
            entries[other] = entries.pop(name)
        elif field == "drop":
            del entries[name]
        else:
            entries[name][field] = data.draw(_hostile_value(field))
        path.write_text(json.dumps(changed))
        try:
            read_header(path)
            verify_file(path)
            loaded = load(path)
        except HeraError:
            return
        # Accepted: then every array is one that was written, under its own name, unchanged. A dropped
        # array may pass the loader (it knows no family); the family's runtime refuses the gap.
        assert set(loaded.arrays) <= set(good.arrays), f"{field} of {name}: an array accepted under a name never written"
        assert field == "drop" or set(loaded.arrays) == set(good.arrays), f"{field} of {name}: an array silently lost"
        for key, array in ((k, good.arrays[k]) for k in loaded.arrays):
            assert loaded.arrays[key].dtype == array.dtype and loaded.arrays[key].shape == array.shape
            assert loaded.arrays[key].tobytes() == array.tobytes(), f"silently wrong array {key}"

    claim()
    note("fuzz: instance loader", inputs=tried)


def test_instance_loader_on_hostile_headers(real_file: bytes, tmp_path: Path) -> None:
    """Header fields of the wrong type, absurd counters, JSON nested thousands deep: one clean error."""
    from hera.errors import HeraError
    from hera.instance import load, read_header

    document = json.loads(real_file)
    fields = sorted(document["header"]) + ["format_version", "format"]
    path = tmp_path / "hh.json"
    tried = 0
    values = HOSTILE_INTS | st.none() | st.text(max_size=8) | st.floats() | st.lists(st.integers(), max_size=3)

    @FAST
    @given(st.sampled_from(fields), values | st.integers(1, 60_000).map(lambda n: ("deep", n)))
    def claim(field: str, value: Any) -> None:
        nonlocal tried
        tried += 1
        changed = json.loads(real_file)
        where = changed if field in ("format_version", "format") else changed["header"]
        marker = '"__deep__"'
        where[field] = "__deep__" if isinstance(value, tuple) else value
        text = json.dumps(changed)
        if isinstance(value, tuple):
            text = text.replace(marker, _deep(value[1]), 1)
        path.write_text(text)
        for read in (read_header, load):
            try:
                read(path)
            except HeraError:
                pass

    claim()
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

    deep = st.integers(1, 60_000).map(lambda n: '{"params": ' + _deep(n, '{"a": ', "}") + "}") | st.integers(1, 60_000).map(_deep)
    variables = st.sampled_from(["HERA_DEVICE", "HERA_AUTOSAVE_INTERVAL", "HERA_PARAMS", "HERA_SEED", "HERA_CACHE_DIR", "HERA_RUNTIME_DIR"])
    env_values = st.text(max_size=10) | st.integers(1, 60_000).map(_deep) | st.sampled_from(["", "\x00", "a\x00b"])

    @FAST
    @given(st.dictionaries(keys, values, max_size=5).map(json.dumps) | st.text(max_size=80) | deep, st.dictionaries(variables, env_values, max_size=2), st.text(max_size=20) | deep.map(lambda t: "hidden.width=" + t))
    def feed(text: str, environ: dict[str, str], assignment: str) -> None:
        nonlocal tried
        tried += 1
        (work / "hera.json").write_text(text)
        try:
            config.read_file(work / "hera.json")
            config.gather({}, workdir=work, environ=environ)
        except HeraError:
            pass
        try:
            config.parse_assignment(assignment)
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


def test_protocol_on_signed_hostile_requests() -> None:
    """What an attacker who stole no key cannot send, the owner's own buggy script can: validated all the same."""
    from hera.agent import protocol

    key, nonce = b"s" * 32, "n0nce"
    verifier = protocol.Verifier(key, nonce)
    tried = 0
    sequence = iter(range(10**9))
    anything = st.recursive(
        st.none() | st.booleans() | HOSTILE_INTS | st.floats() | st.text(max_size=12),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=8,
    )
    ops = st.sampled_from(sorted(protocol.ARGS)) | st.text(max_size=10)
    args = st.dictionaries(st.sampled_from(["n", "text", "data", "path", "kind", "value", "name", "every", "neuron", "probe"]) | st.text(max_size=6), anything, max_size=4)
    payloads = st.fixed_dictionaries({"id": HOSTILE_INTS, "op": ops, "args": args}).map(json.dumps) | st.integers(1, 60_000).map(_deep)

    @FAST
    @given(payloads)
    def feed(payload: str) -> None:
        nonlocal tried
        tried += 1
        seq = next(sequence)
        signed = json.dumps({"seq": seq, "payload": payload, "signature": protocol.sign(key, nonce, seq, payload)}).encode()
        try:
            protocol.decode_request(verifier.open(signed))
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
    for _ in range(40):
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
