"""Step 1 of [`nsegaug.deform`][nsegaug.deform] as a stream of rows: the uniform fields, in order, a block at a time.

A draw here knows its (alpha, sigma) pair before any field is filled, and
fills the displacement ``alpha * (2u - 1)`` of each field a block of rows
at a time, in order, so that a map too large to hold its fields whole
([`nsegaug.bands`][nsegaug.bands]) gets the same numbers as one drawn whole:

- [`ReferenceRows`][nsegaug.draws.ReferenceRows], engines 1 and 2: the reference code's Mersenne
  Twister stream. NSegment+ draws its pair after both fields, so the stream
  is first run through both fields once without keeping them (the pair is
  then known), and each field is drawn again from a copy of the state where
  it starts. That costs a second pass of the generator: paid by maps drawn
  in bands only.
- [`FastRows`][nsegaug.draws.FastRows], engine 3: the pair first, then two PCG64 streams
  seeded from the map's own ``RandomState``, each 64-bit draw giving four
  16-bit levels ``v``, ``u = (v + 0.5) / 65536``. The generator is eight
  times as fast as the Mersenne Twister's doubles here; 16 bits are far
  below what a blur of many taps keeps (a level is 1/65536 of alpha). The
  fields are the reference's arithmetic on those ``u``, so engine 3 is
  [`apply_deformation`][nsegaug.deform.apply_deformation] of the noise it draws, bit for
  bit (tested).

The float32 fields round ``u`` first and fold the reference's operations
into one multiply and one subtract ([`displacement_field`][nsegaug.deform.displacement_field]);
float64 repeats the reference's operations one by one.
"""

from __future__ import annotations

import numpy as np

from .params import VARIANTS

# Values per block when a field is filled in blocks (1 MiB of float32, 2 of float64: in a core's cache).
BLOCK_PX = 1 << 18
# 2**-16, exact in float32: u = (v + 0.5) * LEVEL.
LEVEL = 1.0 / 65536


class ReferenceRows:
    """The reference stream for a map of ``shape``: the pair drawn where the reference draws it, fields in rows.

    Constructing it moves ``random_state`` past everything the reference
    draws for one deformation (fields and pair), exactly as drawing them
    whole does; [`fill`][nsegaug.draws.ReferenceRows.fill] then gives each field's rows in order.
    """

    def __init__(
        self, random_state: np.random.RandomState, shape: tuple[int, int], n_pairs: int, variant: str = "nsegment+"
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if variant == "nsegment":
            self.pair_index = int(random_state.randint(0, n_pairs))
        self._streams = []
        for _ in range(2):  # the x field, then the y field
            stream = np.random.RandomState()
            stream.set_state(random_state.get_state())
            self._streams.append(stream)
            _skip_doubles(random_state, shape[0] * shape[1])
        if variant == "nsegment+":
            self.pair_index = int(random_state.randint(0, n_pairs))

    def fill(self, field: int, out: np.ndarray, alpha: float) -> None:
        """The next ``len(out)`` rows of field ``field`` (0: x, 1: y) as displacements, in ``out``'s dtype."""
        stream = self._streams[field]
        if out.dtype == np.float64:
            out[...] = stream.random_sample(out.shape)
            out *= 2.0
            out -= 1.0
            out *= alpha
            return
        for block in _row_blocks(out):
            block[...] = stream.random_sample(block.shape)
            _float32_displacement(block, alpha)


class FastRows:
    """Engine 3's draw: the pair, then the fields from two PCG64 streams of 16-bit levels, in rows."""

    def __init__(self, random_state: np.random.RandomState, n_pairs: int) -> None:
        self.pair_index = int(random_state.randint(0, n_pairs))
        words = random_state.randint(0, 2**32, size=4, dtype=np.uint64)
        first = np.random.PCG64(np.random.SeedSequence([int(word) for word in words]))
        self._streams = [first, first.jumped()]
        # A 64-bit draw holds four levels; those a fill did not use start the next fill of that field.
        self._spare = [np.zeros(0, dtype="<u2"), np.zeros(0, dtype="<u2")]

    def levels(self, field: int, count: int) -> np.ndarray:
        """The next ``count`` 16-bit levels of field ``field``, in order."""
        spare = self._spare[field]
        words = -(-(count - spare.size) // 4)
        # Little-endian on every machine: the levels of a word come in one order everywhere.
        drawn = self._streams[field].random_raw(max(words, 0)).astype("<u8", copy=False).view("<u2")
        levels = np.concatenate([spare, drawn]) if spare.size else drawn
        self._spare[field] = levels[count:].copy()
        return levels[:count]

    def fill(self, field: int, out: np.ndarray, alpha: float) -> None:
        """The next ``len(out)`` rows of field ``field`` (0: x, 1: y) as displacements, in ``out``'s dtype."""
        for block in _row_blocks(out):
            levels = self.levels(field, block.size).reshape(block.shape)
            if out.dtype == np.float64:
                np.add(levels, 0.5, out=block)
                block *= LEVEL
                block *= 2.0
                block -= 1.0
                block *= alpha
            else:
                # u = (v + 0.5) / 65536 is exact in float32, and so is u * fl32(2 alpha) = (v + 0.5) * c.
                np.add(levels, np.float32(0.5), out=block, dtype=np.float32)
                block *= np.float32(2.0 * alpha) * np.float32(LEVEL)
                block -= np.float32(alpha)

    def uniform(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Both fields' ``u`` in [0, 1), float64, as [`DeformDraw`][nsegaug.deform.DeformDraw] holds them
        (uses the draw)."""
        return tuple((self.levels(field, shape[0] * shape[1]).reshape(shape) + 0.5) * LEVEL for field in (0, 1))


def _float32_displacement(block: np.ndarray, alpha: float) -> None:
    # nsegaug.deform.displacement_field's float32 arithmetic, in place.
    np.multiply(block, 2.0 * alpha, dtype=np.float32, out=block)
    block -= np.float32(alpha)


def _row_blocks(out: np.ndarray):
    rows = max(1, BLOCK_PX // max(1, out.shape[1]))
    for top in range(0, out.shape[0], rows):
        yield out[top : top + rows]


def _skip_doubles(random_state: np.random.RandomState, count: int) -> None:
    """Move ``random_state`` past ``count`` doubles (drawing them is the fastest way NumPy offers)."""
    for start in range(0, count, BLOCK_PX):
        random_state.random_sample(min(BLOCK_PX, count - start))
