"""Byte lines in as spikes of an input area, spikes of an output area back out as byte lines.

Why a byte clock: an agent is fed lines of bytes and answers in lines, but
its brain runs in iterations. Input is presented one byte per
``ticks_per_byte`` iterations (on iterations divisible by it), each byte as
one spike of a one-hot input area (or of a population of ``copies`` neurons
per byte value). The presentation schedule is a pure function of the queue
and the iteration, so the host can hand a fused launch the bytes its ticks
will present, and afterwards drop exactly those the iterations actually run
consumed: an early stop on a breakpoint loses nothing, and the queue itself
is part of the saved state (``pending`` bytes).

The output area has one neuron (or population) per byte value; over each
byte-clock window, the value whose neurons spiked most (at least
``min_spikes``) is the byte produced, and a newline closes a line.

Host API: :class:`LineEncoder` (``feed``, ``schedule``, ``consume``, ``pending``),
:class:`LineDecoder` (``decode(counts)``, ``push(byte)``, ``lines()``, ``read()``).
Kernel API (``@ti.func``): ``presented(schedule, t, first_tick, ticks) -> i32``: the byte on
iteration ``t``'s tick, or -1; ``schedule`` holds :meth:`LineEncoder.schedule` for the launch and
``first_tick`` is :meth:`LineEncoder.first_tick` of its first iteration. Size the schedule for the
ticks one launch can hold (``launch // ticks + 2``): a tick past its end presents nothing, while
:meth:`LineEncoder.consume` would count it. Which neuron a byte fires and how the output area's
spikes become a byte is the family's own (abraxas lays bytes out on a sheet); :class:`LineDecoder`
takes the counts per output neuron however the family gathers them.
"""

# no "from __future__ import annotations": Taichi reads the annotations of its functions as objects

import numpy as np
import taichi as ti

from hera.kernels.template import Template

NEWLINE = 10


class LineEncoder:
    """The input queue and its byte clock."""

    def __init__(self, ticks_per_byte: int, pending: bytes = b"") -> None:
        if ticks_per_byte < 1:
            raise ValueError("ticks_per_byte must be at least 1")
        self.ticks = ticks_per_byte
        self.queue = bytearray(pending)

    def feed(self, data: bytes) -> None:
        """Queue bytes (a caller feeding a line includes its newline)."""
        self.queue += data

    def first_tick(self, iteration: int) -> int:
        """The index of the first byte-clock tick at or after ``iteration``."""
        return -(-iteration // self.ticks)

    def schedule(self, iteration: int, count: int, capacity: int) -> np.ndarray:
        """The bytes the ticks in ``[iteration, iteration + count)`` present, -1 padded to ``capacity``."""
        ticks = max(0, (iteration + count - 1) // self.ticks - self.first_tick(iteration) + 1)
        out = np.full(capacity, -1, np.int32)
        n = min(ticks, len(self.queue), capacity)
        out[:n] = np.frombuffer(bytes(self.queue[:n]), np.uint8)
        return out

    def consume(self, iteration: int, ran: int) -> bytes:
        """Drop (and return) the bytes presented by the ``ran`` iterations run from ``iteration``."""
        if ran <= 0:
            return b""
        ticks = (iteration + ran - 1) // self.ticks - self.first_tick(iteration) + 1
        taken = bytes(self.queue[: max(0, ticks)])
        del self.queue[: len(taken)]
        return taken

    @property
    def pending(self) -> np.ndarray:
        """The queue as a uint8 array, for the saved state."""
        return np.frombuffer(bytes(self.queue), np.uint8).copy()


class LineDecoder:
    """Output spike counts per byte window to bytes, and bytes to lines."""

    def __init__(self, copies: int = 1, min_spikes: int = 1) -> None:
        self.copies = copies
        self.min_spikes = min_spikes
        self.buffer = bytearray()

    def decode(self, counts: np.ndarray) -> int:
        """The byte a window's counts (``256 * copies`` neurons) stand for, or -1 if too few spikes."""
        per_value = np.asarray(counts).reshape(256, self.copies).sum(axis=1)
        best = int(np.argmax(per_value))
        return best if per_value[best] >= self.min_spikes else -1

    def push(self, byte: int) -> None:
        if byte >= 0:
            self.buffer.append(byte)

    def read(self) -> bytes:
        """Everything produced since the last read."""
        data, self.buffer = bytes(self.buffer), bytearray()
        return data

    def lines(self) -> list[bytes]:
        """The complete lines produced so far (each with its newline); a partial line stays buffered."""
        end = self.buffer.rfind(NEWLINE)
        if end < 0:
            return []
        done, self.buffer = bytes(self.buffer[: end + 1]), self.buffer[end + 1 :]
        return done.splitlines(keepends=True)


@ti.func
def presented(schedule: Template, t: ti.i64, first_tick: ti.i64, ticks: ti.i32) -> ti.i32:
    """The byte presented at iteration ``t`` (-1 if ``t`` is no tick or the queue ran dry)."""
    byte = -1
    if t % ticks == 0:
        slot = ti.cast(t // ticks - first_tick, ti.i32)
        if 0 <= slot < schedule.shape[0]:
            byte = schedule[slot]
    return byte

