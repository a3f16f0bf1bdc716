#!/usr/bin/env python3
"""How fast hera writes and reads an instance file, beside numpy on the same arrays.

Going down and coming up are an instance file's write and read, and the file is
mostly arrays, so the array codec (raw little-endian bytes in base64 inside
JSON, zstd where it pays, with a CRC-32 per array) decides how long an agent
takes to go down and come up. numpy's own binary format is the floor to compare with: no text, no
checksum. In every repetition this writes the same random float32 arrays
durably (fsync included) with ``hera.instance.save`` and with ``numpy.save``,
then reads each file back (``hera.instance.load``, ``numpy.load``), alternating
which side goes first; it reports the median MB/s of raw array bytes and the
ratio hera/numpy. Peak memory is measured in a fresh subprocess per side that
does nothing but that one read or write: its ``ru_maxrss`` minus its resident
size before the arrays exist, so the arrays themselves count once.

An all-zero array is written and read separately to show that a constant array
costs next to nothing in hera's file ("fill" encoding), unlike in numpy's; so
is an array 3 % non-zero, as a learned brain's weights are, which format 3
stores as zstd frames. Last, the CRC-32 rates of zlib and of ISA-L (what the
codec uses) on the same 256 MiB, to show what the checksum costs.

Reads come from the page cache (the files were just written), which is the
harder case for hera: the codec, not the disk, sets the pace; ``--cold`` drops
each file from the page cache first. Before every timed step the script
touches and frees some memory (see :func:`warm_memory`): on these VMs memory
left idle for a second goes back to the host and costs more to touch again
than either codec spends, and that would decide who wins.

    python scripts/bench_instance_io.py --gib 1 --repeat 5
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from hera.instance import Header

MIB = 1024 * 1024
ARRAYS = 4  # random arrays sharing the --gib total
SEED = 20261123
TARGETS = {"write": 0.60, "read": 0.50, "peak": 1.5}


def make_arrays(gib: float) -> dict[str, np.ndarray]:
    """The random float32 arrays, the same for the same ``gib`` in every process."""
    per = int(gib * 1024 * MIB) // ARRAYS // 4  # float32 elements per array
    rng = np.random.default_rng(SEED)
    # float32 straight from the generator: no float64 temporary doubling the peak.
    return {f"w{index}": rng.random(per, dtype=np.float32) for index in range(ARRAYS)}


def make_zeros(gib: float) -> dict[str, np.ndarray]:
    return {"zeros": np.zeros(int(gib * 1024 * MIB) // ARRAYS // 4, dtype=np.float32)}


def make_sparse(gib: float) -> dict[str, np.ndarray]:
    """One array as a learned brain's weights look: 3 % of the elements non-zero (format 3 stores it as zstd)."""
    rng = np.random.default_rng(SEED + 1)
    sparse = np.zeros(int(gib * 1024 * MIB) // ARRAYS // 4, dtype=np.float32)
    hits = rng.random(sparse.size, dtype=np.float32) < 0.03
    sparse[hits] = rng.standard_normal(int(hits.sum()), dtype=np.float32)
    return {"sparse": sparse}


def crc_rates() -> dict[str, float]:
    """GB/s of the standard library's CRC-32 and of ISA-L's (the codec's) on 256 MiB, best of 3."""
    data = np.random.default_rng(SEED).integers(0, 256, 256 * MIB, dtype=np.uint8)
    rates = {}
    for name, fn in (("zlib", zlib.crc32), ("isal", _isal_crc32())):
        best = min(_seconds(lambda fn=fn: fn(data)) for _ in range(3))
        rates[name] = round(data.nbytes / best / 1e9, 1)
    return rates


def _isal_crc32() -> Callable[[Any], int]:
    from isal import isal_zlib

    return isal_zlib.crc32


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def header() -> Header:
    import uuid

    from hera.instance import FamilyRef, Header, now

    return Header(
        uuid=str(uuid.UUID(int=SEED)),
        callsign="bench-io",
        family=FamilyRef(name="bench", version="0"),
        layout="bench",
        params={},
        seed=1,
        created=now(),
    )


def hera_write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    from hera.instance import save

    save(path, header(), arrays)


def hera_read(path: Path) -> dict[str, np.ndarray]:
    from hera.instance import load

    return load(path).arrays


def numpy_write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """numpy.save of every array into one file, then fsync: as durable as hera's write."""
    with open(path, "wb") as out:
        for array in arrays.values():
            np.save(out, array, allow_pickle=False)
        out.flush()
        os.fsync(out.fileno())


def numpy_read(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    with open(path, "rb") as handle:
        return {name: np.load(handle, allow_pickle=False) for name in names}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-for-bit equality (NaN payloads included), not numeric equality."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    return bool(np.array_equal(a.reshape(-1).view(np.uint8), b.reshape(-1).view(np.uint8)))


def checksums(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    return {name: zlib.crc32(array) for name, array in arrays.items()}


def array_bytes(gib: float) -> int:
    return int(gib * 1024 * MIB) // ARRAYS // 4 * 4 * ARRAYS


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(role: str, directory: Path, gib: float) -> None:
    """One side's read or write alone in this fresh process; print its memory on stdout.

    Writers leave their file for the matching reader, the next child.
    """
    import hera.instance  # noqa: F401
    import hera.instance.codec  # noqa: F401  (imports belong to the baseline, not the peak)

    hera_file, numpy_file = directory / "child.hera.json", directory / "child.npy"
    baseline = rss_bytes()
    sums: dict[str, int] = {}
    if role in ("hera-write", "numpy-write"):
        arrays = make_arrays(gib)
        if role == "hera-write":
            hera_write(hera_file, arrays)
        else:
            numpy_write(numpy_file, arrays)
        sums = checksums(arrays)
    elif role == "hera-read":
        sums = checksums(hera_read(hera_file))
    elif role == "numpy-read":
        sums = checksums(numpy_read(numpy_file, [f"w{i}" for i in range(ARRAYS)]))
    else:
        raise SystemExit(f"unknown role {role}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    print(json.dumps({"baseline": baseline, "peak": peak, "sums": sums}))


def measure_peaks(directory: Path, gib: float) -> tuple[dict[str, float], dict[str, int]]:
    """Peak memory of each side over the array bytes, each in a fresh process.

    Run these before this process allocates anything big: Linux carries the
    parent's high-water mark into a child's ``ru_maxrss`` across fork and exec.
    Also returns the arrays' checksums, as the writers saw them.
    """
    peaks, expected = {}, {}
    nbytes = array_bytes(gib)
    for role in ("hera-write", "hera-read", "numpy-write", "numpy-read"):
        result = subprocess.run(
            [sys.executable, __file__, "--child", role, "--dir", str(directory), "--gib", str(gib)],
            capture_output=True,
            text=True,
            check=True,
        )
        got = json.loads(result.stdout)
        expected = expected or got["sums"]
        if got["sums"] != expected:
            raise SystemExit(f"{role}: the arrays read back in a fresh process differ from those written")
        peaks[role] = (got["peak"] - got["baseline"]) / nbytes
    for name in ("child.hera.json", "child.npy"):
        (directory / name).unlink(missing_ok=True)
    return peaks, expected


def warm_memory(nbytes: int) -> None:
    """Touch and free ``nbytes`` so the next step runs on memory the host still backs.

    These VMs hand freed guest memory back to the host within a second or two
    (free page reporting), and touching such memory again costs 1-3 s per GiB,
    far more than either codec; whichever side ran first after a pause paid
    it. Warming right before every timed step measures the codecs instead.
    """
    block = np.empty(nbytes, dtype=np.uint8)
    block[:: mmap.PAGESIZE] = 1
    del block


def drop_from_page_cache(path: Path) -> None:
    """Make the next read of ``path`` come from the disk (works without root for clean pages)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed(fn: Callable[[], Any], warm: int) -> tuple[float, Any]:
    warm_memory(warm)
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    peaks, expected = measure_peaks(directory, args.gib)
    arrays = make_arrays(args.gib)
    nbytes = array_bytes(args.gib)
    if checksums(arrays) != expected or nbytes != sum(a.nbytes for a in arrays.values()):
        raise SystemExit("the arrays differ between processes")
    zeros = make_zeros(args.gib)
    small = {"zero": zeros, "sparse": make_sparse(args.gib)}
    names = list(arrays)
    hera_file, numpy_file = directory / "bench.hera.json", directory / "bench.npy"
    times: dict[str, list[float]] = {
        key: [] for key in ("hera_write", "numpy_write", "hera_read", "numpy_read",
                            "zero_hera_write", "zero_numpy_write", "zero_hera_read", "zero_numpy_read",
                            "sparse_hera_write", "sparse_numpy_write", "sparse_hera_read", "sparse_numpy_read")
    }
    warm = 2 * nbytes  # the read's arrays, or the written file's page cache, and then some
    for rep in range(args.repeat):
        # Alternate who goes first so neither side always meets the warmer (or dirtier) machine.
        order = ("hera", "numpy") if rep % 2 == 0 else ("numpy", "hera")
        for path in (hera_file, numpy_file, *directory.glob("zero.*"), *directory.glob("sparse.*")):
            path.unlink(missing_ok=True)
        for side in order:
            if side == "hera":
                times["hera_write"].append(timed(lambda: hera_write(hera_file, arrays), warm)[0])
            else:
                times["numpy_write"].append(timed(lambda: numpy_write(numpy_file, arrays), warm)[0])
        for side in order:
            if args.cold:
                drop_from_page_cache(hera_file if side == "hera" else numpy_file)
            if side == "hera":
                elapsed, loaded = timed(lambda: hera_read(hera_file), warm)
                times["hera_read"].append(elapsed)
            else:
                elapsed, loaded = timed(lambda: numpy_read(numpy_file, names), warm)
                times["numpy_read"].append(elapsed)
            if list(loaded) != names or not all(same_bits(loaded[n], arrays[n]) for n in names):
                raise SystemExit(f"{side}: the arrays read back differ from those written")
            del loaded
        for kind, one in small.items():  # one array each: all zeros (fill), sparse (zstd)
            (name,) = one
            for side in order:
                path = directory / f"{kind}.{side}"
                if side == "hera":
                    times[f"{kind}_hera_write"].append(timed(lambda path=path, one=one: hera_write(path, one), warm // 4)[0])
                    if args.cold:
                        drop_from_page_cache(path)
                    elapsed, loaded = timed(lambda path=path: hera_read(path), warm // 4)
                else:
                    times[f"{kind}_numpy_write"].append(timed(lambda path=path, one=one: numpy_write(path, one), warm // 4)[0])
                    if args.cold:
                        drop_from_page_cache(path)
                    elapsed, loaded = timed(lambda path=path, name=name: numpy_read(path, [name]), warm // 4)
                times[f"{kind}_{side}_read"].append(elapsed)
                if not same_bits(loaded[name], one[name]):
                    raise SystemExit(f"{side}: the {kind} array read back differs")
                del loaded
        if not args.json:
            print(
                f"  rep {rep + 1}/{args.repeat}: "
                + "  ".join(f"{k} {times[k][-1]:.2f}s" for k in ("hera_write", "numpy_write", "hera_read", "numpy_read")),
                file=sys.stderr,
                flush=True,
            )
    sizes = {
        "hera_file_bytes": hera_file.stat().st_size,
        "numpy_file_bytes": numpy_file.stat().st_size,
        **{f"{kind}_{side}_file_bytes": (directory / f"{kind}.{side}").stat().st_size
           for kind in small for side in ("hera", "numpy")},
    }
    medians = {key: statistics.median(values) for key, values in times.items()}
    mbps = {key: nbytes / 1e6 / medians[key] for key in ("hera_write", "numpy_write", "hera_read", "numpy_read")}
    return {
        "array_bytes": nbytes,
        "arrays": ARRAYS,
        "repeat": args.repeat,
        "page_cache": "cold" if args.cold else "warm",
        "median_s": {key: round(value, 4) for key, value in medians.items()},
        "mb_per_s": {key: round(value, 1) for key, value in mbps.items()},
        "ratio": {
            "write": round(mbps["hera_write"] / mbps["numpy_write"], 3),
            "read": round(mbps["hera_read"] / mbps["numpy_read"], 3),
        },
        # Each repetition's hera and numpy ran back to back: the median of those
        # ratios is steadier than the ratio of medians when the machine drifts.
        "paired_ratio": {
            kind: round(statistics.median(n / h for h, n in zip(times[f"hera_{kind}"], times[f"numpy_{kind}"], strict=True)), 3)
            for kind in ("write", "read")
        },
        "peak_over_array_bytes": {key: round(value, 3) for key, value in peaks.items()},
        "file_bytes": sizes,
        "samples_s": {key: [round(v, 4) for v in values] for key, values in times.items()},
        "crc32_gb_per_s": crc_rates(),
        "versions": {"python": sys.version.split()[0], "numpy": np.__version__, "pybase64": pybase64_version()},
    }


def pybase64_version() -> str:
    import pybase64

    return pybase64.__version__


def report(result: dict[str, Any]) -> str:
    mb, ratio, peak, med = result["mb_per_s"], result["ratio"], result["peak_over_array_bytes"], result["median_s"]
    sizes, paired = result["file_bytes"], result["paired_ratio"]
    ok = {
        "write": ratio["write"] >= TARGETS["write"],
        "read": ratio["read"] >= TARGETS["read"],
        "peak": max(peak["hera-write"], peak["hera-read"]) <= TARGETS["peak"],
    }
    mark = {True: "meets", False: "MISSES"}
    gib = result["array_bytes"] / 1024**3
    lines = [
        f"{result['arrays']} random float32 arrays, {gib:g} GiB in all; median of {result['repeat']} runs, "
        f"MB/s of raw array bytes; reads from a {result['page_cache']} page cache",
        "",
        "| | hera | numpy | hera / numpy (paired) | target |",
        "| --- | ---: | ---: | ---: | --- |",
        f"| write + fsync (MB/s) | {mb['hera_write']:.0f} | {mb['numpy_write']:.0f} | {ratio['write']:.2f} ({paired['write']:.2f}) | ≥ 0.60 ({mark[ok['write']]}) |",
        f"| read (MB/s) | {mb['hera_read']:.0f} | {mb['numpy_read']:.0f} | {ratio['read']:.2f} ({paired['read']:.2f}) | ≥ 0.50 ({mark[ok['read']]}) |",
        f"| peak memory, write (× array bytes) | {peak['hera-write']:.2f} | {peak['numpy-write']:.2f} | | ≤ 1.5 ({mark[peak['hera-write'] <= TARGETS['peak']]}) |",
        f"| peak memory, read (× array bytes) | {peak['hera-read']:.2f} | {peak['numpy-read']:.2f} | | ≤ 1.5 ({mark[peak['hera-read'] <= TARGETS['peak']]}) |",
        f"| file size (MB) | {sizes['hera_file_bytes'] / 1e6:.0f} | {sizes['numpy_file_bytes'] / 1e6:.0f} | {sizes['hera_file_bytes'] / sizes['numpy_file_bytes']:.2f} | |",
        f"| all-zero {gib / result['arrays'] * 1024:g} MiB array: file size (bytes) | {sizes['zero_hera_file_bytes']} | {sizes['zero_numpy_file_bytes']} | | |",
        f"| all-zero array: write + fsync / read (ms) | {med['zero_hera_write'] * 1e3:.0f} / {med['zero_hera_read'] * 1e3:.0f} | {med['zero_numpy_write'] * 1e3:.0f} / {med['zero_numpy_read'] * 1e3:.0f} | | |",
        f"| 3 %-sparse {gib / result['arrays'] * 1024:g} MiB array: file size (MB) | {sizes['sparse_hera_file_bytes'] / 1e6:.1f} | {sizes['sparse_numpy_file_bytes'] / 1e6:.1f} | {sizes['sparse_hera_file_bytes'] / sizes['sparse_numpy_file_bytes']:.3f} | |",
        f"| 3 %-sparse array: write + fsync / read (ms) | {med['sparse_hera_write'] * 1e3:.0f} / {med['sparse_hera_read'] * 1e3:.0f} | {med['sparse_numpy_write'] * 1e3:.0f} / {med['sparse_numpy_read'] * 1e3:.0f} | | |",
        f"| CRC-32, GB/s (zlib / ISA-L) | {result['crc32_gb_per_s']['zlib']} / {result['crc32_gb_per_s']['isal']} | | | |",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gib", type=float, default=1.0, help="GiB of random arrays (default 1)")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions; medians are reported (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object")
    parser.add_argument("--dir", type=Path, default=None, help="where the temporary files go (default: the system temp dir)")
    parser.add_argument("--cold", action="store_true", help="drop each file from the page cache before reading it")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.dir, args.gib)
        return 0
    directory = Path(tempfile.mkdtemp(prefix="hera-bench-io-", dir=args.dir))
    try:
        result = run(args, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        print(json.dumps(result))
    else:
        print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
