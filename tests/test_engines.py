"""The engines a deformation can use: engine 3's own stream against the reference code, and a run's record of it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from oracle import oracle_nsegment_plus

from nsegaug import bands
from nsegaug import deform as D
from nsegaug.cli import main
from nsegaug.draws import LEVEL, FastRows
from nsegaug.errors import UsageError
from nsegaug.manifest import MANIFEST_NAME, META_NAME
from nsegaug.params import DEFAULT_ENGINE, DeformParams
from nsegaug.synthetic import street_scene

SAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data" / "train" / "labels"
ENGINE3 = DeformParams(((30, 3), (100, 5), (15, 10)), area_thresh=40, engine=3)


@pytest.mark.parametrize("banded", [False, True])
@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_engine_3_is_its_drawn_noise_applied_bit_for_bit(monkeypatch, label_map, precision, banded):
    params = replace(ENGINE3, precision=precision)
    if banded:  # the drawn noise read back in bands, as the draw fills them
        monkeypatch.setattr(bands, "WHOLE_MAP_PX", 16)
        monkeypatch.setattr(bands, "BAND_PX", 1 << 10)
    for seed in range(4):
        direct = D.deform(label_map, np.random.RandomState(seed), params)
        draw = D.draw_deformation(np.random.RandomState(seed), label_map.shape, params)
        applied = D.apply_deformation(label_map, draw, params)
        np.testing.assert_array_equal(direct.segment, applied.segment)
        assert direct.stats() == applied.stats()
        assert (draw.alpha, draw.sigma) == (direct.alpha, direct.sigma)


def test_engine_3_float64_is_the_reference_code_on_its_noise(label_map):
    # The oracle draws from a RandomState: give it engine 3's noise through one that replays those numbers.
    params = replace(ENGINE3, precision="float64")
    for seed in range(4):
        draw = D.draw_deformation(np.random.RandomState(seed), label_map.shape, params)
        expected, alpha, sigma, _ = oracle_nsegment_plus(
            label_map, _Replay(draw), ((draw.alpha, draw.sigma),), params.area_thresh
        )
        result = D.deform(label_map, np.random.RandomState(seed), params)
        assert (alpha, sigma) == (result.alpha, result.sigma)
        np.testing.assert_array_equal(result.segment, expected)


class _Replay:
    """A stand-in for the oracle's RandomState: the two fields of a draw, then pair 0."""

    def __init__(self, draw):
        self.fields = [draw.noise_x, draw.noise_y]

    def rand(self, *shape):
        return self.fields.pop(0)

    def randint(self, low, high):
        return 0


@pytest.mark.parametrize("pair", [(100, 10), (50, 5), (30, 3), (15, 10)])
def test_engine_3_agrees_with_the_reference_engine_on_its_noise_on_full_size_street_scenes(pair):
    segment = street_scene(1024, 2048, 700, seed=3772)
    segment[::97, ::89] = 255
    params = DeformParams((pair,), area_thresh=1000, engine=3)
    for seed in range(2):
        result = D.deform(segment, np.random.RandomState(seed), params)
        draw = D.draw_deformation(np.random.RandomState(seed), segment.shape, params)
        reference = D.apply_deformation(segment, draw, replace(params, precision="float64", engine=2))
        assert np.mean(result.segment == reference.segment) >= 0.9999
        assert result.changed_fraction > 0


def test_engine_3_draws_its_own_copies_uniformly_and_leaves_the_state_where_it_says():
    segment = street_scene(256, 384, 30, seed=5)
    state = np.random.RandomState(11)
    three = D.deform(segment, state, DeformParams(((50, 3),), engine=3))
    two = D.deform(segment, np.random.RandomState(11), DeformParams(((50, 3),)))
    assert np.mean(three.segment != two.segment) > 0.001  # other copies for the same seed
    after = np.random.RandomState(11)
    after.randint(0, 1), after.randint(0, 2**32, size=4, dtype=np.uint64)  # the pair, then the stream's seed
    assert state.rand() == after.rand()
    u_x, u_y = FastRows(np.random.RandomState(0), 1).uniform((512, 512))
    for u in (u_x, u_y):
        assert u.min() == 0 and u.max() == 1 - LEVEL  # u = (s + 32768) / 65536, s every signed 16-bit level
        assert abs(u.mean() - 0.5) < 0.002 and abs(u.std() - 12**-0.5) < 0.002
    assert abs(np.corrcoef(u_x.ravel(), u_y.ravel())[0, 1]) < 0.01


def test_engine_3s_stream_is_pinned():
    # The copies a run made stay reproducible: a change of the levels' order or seeding shows here. The values
    # are each 64-bit word's little-endian 16-bit halves read as signed integers, computed apart from the engine
    # (int.from_bytes on the words of PCG64 seeded as FastRows seeds it).
    levels = FastRows(np.random.RandomState(2024), 15)
    assert levels.pair_index == 8
    assert levels.levels(0, 6).tolist() == [-24986, -8633, -13101, -22356, 28727, 21784]
    assert levels.levels(1, 3).tolist() == [8712, -10630, 7339]
    assert levels.levels(0, 2).tolist() == [5115, -18060]  # the field goes on past a word's unused levels


@pytest.mark.parametrize("engine", [0, 4, True, "3", 2.5, None])
def test_an_unknown_engine_is_refused(engine):
    with pytest.raises(UsageError, match="engine must be one of 1, 2, 3"):
        DeformParams(engine=engine)


def test_the_engine_is_in_the_parameters_json_and_old_records_read_as_engine_2():
    assert DeformParams(engine=3).to_dict()["engine"] == 3
    assert DeformParams.from_dict(DeformParams(engine=3).to_dict()).engine == 3
    assert DeformParams.from_dict({"alpha_sigma": [[1, 3]]}).engine == DEFAULT_ENGINE == 2


def test_engine_1_is_engine_2_with_opencvs_blur(label_map):
    for seed in range(3):
        one = D.deform(label_map, np.random.RandomState(seed), DeformParams(engine=1))
        two = D.deform(label_map, np.random.RandomState(seed), DeformParams(), blur="reference")
        np.testing.assert_array_equal(one.segment, two.segment)


def generate(*args):
    return CliRunner().invoke(main, ["generate", *map(str, args)], catch_exceptions=False)


def test_a_run_records_its_engine_and_resume_refuses_another(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    for name in ("scene_0000.png", "scene_0001.png", "scene_0002.png"):
        shutil.copy(SAMPLES / name, labels / name)
    out, out2 = tmp_path / "three", tmp_path / "two"
    assert generate("--labels", labels, "--out", out, "-k", 2, "--engine", 3, "-q", "-j", 1).exit_code == 0
    assert json.loads((out / META_NAME).read_text())["parameters"]["engine"] == 3
    refused = generate("--labels", labels, "--out", out, "-k", 2, "--resume", "-q")
    assert refused.exit_code != 0 and "engine: 3 -> 2" in refused.stderr
    assert generate("--labels", labels, "--out", out2, "-k", 2, "-q", "-j", 1).exit_code == 0
    assert json.loads((out2 / META_NAME).read_text())["parameters"]["engine"] == 2
    assert (out / MANIFEST_NAME).read_bytes() != (out2 / MANIFEST_NAME).read_bytes()
    again = tmp_path / "again"
    assert generate("--labels", labels, "--out", again, "-k", 2, "--engine", 3, "-q", "-j", 2).exit_code == 0
    assert (again / MANIFEST_NAME).read_bytes() == (out / MANIFEST_NAME).read_bytes()


@pytest.mark.parametrize(
    "engine,precision", [(1, "float32"), (2, "float32"), (3, "float32"), (2, "float64"), (3, "float64")]
)
def test_the_map_alone_is_the_map_deform_gives(monkeypatch, label_map, engine, precision):
    params = replace(ENGINE3, engine=engine, precision=precision)
    for banded in (False, True):
        if banded:
            monkeypatch.setattr(bands, "WHOLE_MAP_PX", 16)
            monkeypatch.setattr(bands, "BAND_PX", 1 << 10)
        for seed in range(3):
            state = np.random.RandomState(seed)
            alone = D.deform_labels(label_map, state, params)
            np.testing.assert_array_equal(alone, D.deform(label_map, np.random.RandomState(seed), params).segment)
            after = np.random.RandomState(seed)
            D.deform(label_map, after, params)
            assert state.rand() == after.rand()
