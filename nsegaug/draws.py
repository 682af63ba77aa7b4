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
  signed 16-bit levels ``s``, ``u = (s + 32768) / 65536``: a uniform double
  in [0, 1) cut to its first 16 bits. The generator is eight times as fast
  as the Mersenne Twister's doubles here; 16 bits are far below what a blur
  of many taps keeps (a level is 1/32768 of alpha).
  [`NoiseRows`][nsegaug.draws.NoiseRows] reads a drawn ``u`` back as these levels, so that
  [`apply_deformation`][nsegaug.deform.apply_deformation] of engine 3's draw is its deformation,
  bit for bit (tested).

The displacement ``alpha * (2u - 1)`` of a level is ``s * alpha / 32768``:
exactly 0 at ``s = 0``, and in float32 a cast and a multiply, which the
engine's row pass takes into its kernel (``fill_levels`` and ``scale``: the
cast alone, then the blur). float64 repeats the reference's operations on
``u`` one by one (each exact but the last), so engine 3 in float64 is the
reference code on its own noise. The Mersenne Twister's float32 fields round
``u`` first and fold the reference's operations into one multiply and one
subtract ([`displacement_field`][nsegaug.deform.displacement_field]).
"""

from __future__ import annotations

import numpy as np

from .params import VARIANTS

# Values per block when a field is filled in blocks (1 MiB of float32, 2 of float64: in a core's cache).
BLOCK_PX = 1 << 18
# The steps of numpy's PCG64.jumped(): the golden ratio times 2**128, odd.
PCG64_JUMP = 0x9E3779B97F4A7C15F39CC0605CEDC835
# 2**-16, exact in float32: engine 3's u = (s + 32768) * LEVEL for a signed 16-bit level s.
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
    """Engine 3's draw: the pair, then the fields from two PCG64 streams of signed 16-bit levels, in rows."""

    def __init__(self, random_state: np.random.RandomState, n_pairs: int) -> None:
        self.pair_index = int(random_state.randint(0, n_pairs))
        seed = np.random.SeedSequence(random_state.randint(0, 2**32, size=4, dtype=np.uint64).tolist())
        second = np.random.PCG64(seed)
        second.advance(PCG64_JUMP)  # PCG64(seed).jumped(), without seeding a generator from the OS first
        self._streams = [np.random.PCG64(seed), second]
        # A 64-bit draw holds four levels; those a fill did not use start the next fill of that field.
        self._spare = [np.zeros(0, dtype="<i2"), np.zeros(0, dtype="<i2")]

    def levels(self, field: int, count: int) -> np.ndarray:
        """The next ``count`` signed 16-bit levels of field ``field``, in order."""
        spare = self._spare[field]
        words = -(-(count - spare.size) // 4)
        # Little-endian on every machine: the levels of a word come in one order everywhere.
        drawn = self._streams[field].random_raw(max(words, 0)).astype("<u8", copy=False).view("<i2")
        levels = np.concatenate([spare, drawn]) if spare.size else drawn
        self._spare[field] = levels[count:].copy()
        return levels[:count]

    def fill_levels(self, field: int, out: np.ndarray) -> None:
        """The next ``len(out)`` rows of field ``field`` (0: x, 1: y) as levels ``s`` (exact in any float)."""
        for block in _row_blocks(out):
            block[...] = self.levels(field, block.size).reshape(block.shape)

    def fill(self, field: int, out: np.ndarray, alpha: float) -> None:
        """The next ``len(out)`` rows of field ``field`` (0: x, 1: y) as displacements, in ``out``'s dtype."""
        self.fill_levels(field, out)
        level_displacement(out, alpha)

    def uniform(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        """Both fields' ``u`` in [0, 1), float64, as [`DeformDraw`][nsegaug.deform.DeformDraw] holds them
        (uses the draw)."""
        return tuple((self.levels(field, shape[0] * shape[1]).reshape(shape) + 32768.0) * LEVEL for field in (0, 1))

    def scale(self, alpha: float) -> float:
        """The displacement of one level ([`level_scale`][nsegaug.draws.level_scale])."""
        return level_scale(alpha)


class NoiseRows:
    """Given fields ``u`` (a [`DeformDraw`][nsegaug.deform.DeformDraw]'s), read as engine 3 reads its own: in
    rows, as levels ``s = 65536 u - 32768`` (exact for the ``u`` engine 3 draws)."""

    def __init__(self, noise_x: np.ndarray, noise_y: np.ndarray) -> None:
        self._noise = (noise_x, noise_y)
        self._next = [0, 0]

    def _rows(self, field: int, count: int) -> np.ndarray:
        first = self._next[field]
        self._next[field] = first + count
        return self._noise[field][first : first + count]

    def fill_levels(self, field: int, out: np.ndarray) -> None:
        """The next ``len(out)`` rows of field ``field`` as levels, in ``out``'s dtype."""
        levels = self._rows(field, len(out)) * 65536.0
        levels -= 32768.0
        out[...] = levels

    def fill(self, field: int, out: np.ndarray, alpha: float) -> None:
        """The next ``len(out)`` rows of field ``field`` as displacements, in ``out``'s dtype."""
        if out.dtype != np.float64:
            self.fill_levels(field, out)
            level_displacement(out, alpha)
            return
        np.multiply(self._rows(field, len(out)), 2.0, out=out)  # the reference's operations on u
        out -= 1.0
        out *= alpha

    def scale(self, alpha: float) -> float:
        """The displacement of one level ([`level_scale`][nsegaug.draws.level_scale])."""
        return level_scale(alpha)


def level_scale(alpha: float) -> float:
    """The displacement of one level of engine 3: ``alpha * (2u - 1) = s * alpha / 32768``."""
    return alpha * 2 * LEVEL


def level_displacement(rows: np.ndarray, alpha: float) -> None:
    """Levels ``s`` to displacements, in place: float64 by the reference's operations on ``u``, float32 by one
    multiply by ``fl32(alpha / 32768)``."""
    if rows.dtype == np.float64:
        rows += 32768.0  # u = (s + 32768) / 65536, 2u and 2u - 1: exact, as the reference's steps on u
        rows *= LEVEL
        rows *= 2.0
        rows -= 1.0
        rows *= alpha
    else:
        rows *= np.float32(level_scale(alpha))


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
