"""Large maps in bands: the whole-map engine's bytes, in bounded memory (a real address-space limit)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nsegaug import bands
from nsegaug import deform as D
from nsegaug.params import MAX_SIGMA, DeformParams
from nsegaug.synthetic import street_scene

# Height not a multiple of the band (512 rows at this width), width not a multiple of any SIMD block.
LARGE = (4133, 4097)


@pytest.fixture(scope="module")
def large_map() -> np.ndarray:
    segment = street_scene(*LARGE, 1500, seed=31)
    segment[::97, ::89] = 255  # single-pixel objects: suppressed boxes in every band
    return segment


def whole_and_banded(monkeypatch, segment, params, seed=5, blur=None):
    """The map deformed whole and in bands (each from its own state), and the states after."""
    states = np.random.RandomState(seed), np.random.RandomState(seed)
    monkeypatch.setattr(bands, "WHOLE_MAP_PX", 1 << 62)
    whole = D.deform(segment, states[0], params, blur=blur)
    monkeypatch.undo()
    return whole, D.deform(segment, states[1], params, blur=blur), states


def assert_same(whole, banded, states):
    assert np.array_equal(whole.segment, banded.segment)
    assert whole.segment.dtype == banded.segment.dtype
    assert whole.stats() == banded.stats()
    assert states[0].rand() == states[1].rand()  # the stream goes on from the same place


@pytest.mark.parametrize(
    "pair,precision,engine",
    [((30, 3), "float32", 2), ((100, 10), "float32", 2), ((50, 5), "float64", 2), ((30, 5), "float32", 1),
     ((50, 10), "float32", 3), ((30, 3), "float64", 3)],
)  # fmt: skip
def test_a_large_map_in_bands_is_the_whole_map_byte_for_byte(monkeypatch, large_map, pair, precision, engine):
    assert bands.is_banded(large_map.shape) and len(list(bands.windows(large_map.shape, 40))) > 4
    params = DeformParams((pair,), area_thresh=500, precision=precision, engine=engine)
    whole, banded, states = whole_and_banded(monkeypatch, large_map, params)
    assert_same(whole, banded, states)
    assert 0 < banded.changed_fraction and 0 < banded.suppressed_fraction < 1


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_the_largest_sigma_in_bands_is_the_whole_map_byte_for_byte(monkeypatch, precision):
    # The halo is 400 rows: bands of 1600 rows on a narrow map, so that the largest kernel stays affordable here.
    segment = street_scene(4133, 96, 60, seed=32)
    params = DeformParams(
        ((3000, MAX_SIGMA),), area_thresh=0, precision=precision
    )  # boxes grown by alpha / 2 would cover it
    monkeypatch.setattr(bands, "WHOLE_MAP_PX", 1 << 16)
    monkeypatch.setattr(bands, "BAND_PX", 1 << 16)
    assert len(list(bands.windows(segment.shape, 400))) == 3
    whole, banded, states = whole_and_banded(monkeypatch, segment, params)
    assert_same(whole, banded, states)
    assert banded.changed_fraction > 0


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int32, np.uint32, np.int64, np.bool_])
@pytest.mark.parametrize("variant", ["nsegment+", "nsegment"])
def test_every_dtype_and_variant_in_small_bands(monkeypatch, dtype, variant):
    base = street_scene(700, 530, 100, seed=2)
    segment = (base % 2).astype(bool) if dtype is np.bool_ else base.astype(dtype)
    params = DeformParams(((30, 3), (100, 5)), area_thresh=300, variant=variant)
    monkeypatch.setattr(bands, "BAND_PX", 1 << 14)
    monkeypatch.setattr(bands, "WHOLE_MAP_PX", 1 << 10)
    assert len(list(bands.windows(segment.shape, 12))) > 5
    assert_same(*whole_and_banded(monkeypatch, segment, params))


def test_maps_wider_than_opencvs_remap_limit_in_bands(monkeypatch):
    segment = np.zeros((300, 33000), dtype=np.uint8)  # cv2.remap refuses a side of 32767 px or more
    segment[:, ::700] = 5
    segment[100:104, 16000:16600] = 2
    monkeypatch.setattr(bands, "BAND_PX", 1 << 16)
    params = DeformParams(((15, 3),), area_thresh=10)
    assert_same(*whole_and_banded(monkeypatch, segment, params))


def test_windows_cover_the_map_once_aligned_and_with_their_halo():
    for shape, halo in [((4133, 4097), 12), ((5000, 700), 400), ((64, 10), 2), ((1, 5), 40), ((1000, 1), 0)]:
        plan = list(bands.windows(shape, halo))
        assert plan[0].top == 0 and plan[-1].bottom == shape[0]
        assert all(a.bottom == b.top for a, b in zip(plan[:-1], plan[1:], strict=True))
        for window in plan:
            assert window.start % bands.ALIGN == 0
            assert window.start <= max(0, window.top - halo) and window.stop >= min(shape[0], window.bottom + halo)
            assert window.stop == shape[0] or (window.stop - window.start) % bands.ALIGN == 0


MEMORY_LIMITED = """
import resource, sys
import cv2
import numpy as np
from nsegaug import deform
from nsegaug.params import DeformParams
from nsegaug.synthetic import street_scene

tile = street_scene(1536, 1536, 300, seed=4)
segment = np.tile(tile, (4, 4))  # 6144 x 6144: 37.7 Mpx, 36 MiB
del tile
if sys.argv[1] == "whole":
    from nsegaug import bands

    bands.WHOLE_MAP_PX = 1 << 62
size = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
# Room for 8 bytes a pixel beyond the map, and 64 MiB for the allocators' arenas; the whole-map engine needs 22.
limit = size + 8 * segment.size + (64 << 20)
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
try:
    result = deform.deform(segment, np.random.RandomState(0), DeformParams(((30, 5),)))
except MemoryError:
    print("out of memory")
    sys.exit(3)
except cv2.error as error:  # OpenCV's own allocations fail as its error
    print("out of memory" if "memory" in str(error).lower() else error)
    sys.exit(3)
print("deformed", result.changed_fraction > 0)
"""


@pytest.mark.parametrize("mode,code,said", [("bands", 0, "deformed True"), ("whole", 3, "out of memory")])
def test_a_large_map_deforms_within_eight_bytes_a_pixel_where_the_whole_map_engine_cannot(mode, code, said):
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY_LIMITED), mode], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == code, done.stdout + done.stderr
    assert said in done.stdout
