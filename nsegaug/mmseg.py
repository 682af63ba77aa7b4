"""nsegaug in mmsegmentation (1.x): the transform, online, and a dataset of ``nsegaug generate``'s copies, offline.

Importing this module registers, under mmseg's registries (used with
``default_scope = "mmseg"``, as mmseg's configs set it):

- ``NoisySegmentPlus`` in ``TRANSFORMS``: the method as it runs in its own code,
  a fresh deformation of ``gt_seg_map`` each time a sample is loaded. Put it in
  the ``train_pipeline`` after ``LoadAnnotations``.
- ``NsegaugManifestDataset`` in ``DATASETS``: a ``BaseSegDataset`` whose samples are
  the images of a ``nsegaug generate --images`` manifest; each time a sample is
  loaded for training, its label is, with probability ``prob``, one of its
  deformed copies and otherwise the original.

In a config file::

    custom_imports = dict(imports=["nsegaug.mmseg"], allow_failed_imports=False)

Needs mmsegmentation >= 1.0 (``mmseg.registry``) with its mmcv and mmengine.
"""

from __future__ import annotations

import os
import secrets
import warnings

import numpy as np

try:
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS, TRANSFORMS
except ImportError as error:
    raise ImportError(
        "nsegaug.mmseg registers NoisySegmentPlus and NsegaugManifestDataset with mmsegmentation, which is not "
        "importable here: pip install mmsegmentation (>= 1.0, with mmengine and an mmcv built with its ops; see "
        "mmsegmentation's install guide), "
        "or use nsegaug.NoisySegmentPlus directly"
    ) from error

from .manifest import ImageSample, open_generated, problems_message
from .params import PAPER_PROB, check_prob
from .sampling import choose_label, sample_rng
from .seeding import process_identity
from .transform import NoisySegmentPlus

NAME = "NoisySegmentPlus"
DATASET_NAME = "NsegaugManifestDataset"
# Keeps the label-choice seeds of DataLoader workers and other ranks apart from every other nsegaug stream.
_MMSEG_STREAM = 0x6E736D6D  # "nsmm"


def manifest_samples(manifest: str | os.PathLike) -> list[ImageSample]:
    """The samples of a ``nsegaug generate`` manifest: each image with its labels, the original first.

    The one place this module reads a manifest. A manifest that cannot be
    trained on (unfinished, made without ``--images``, rows without an image or
    with copies missing) is a ``ValueError`` that says why.
    """
    generated = open_generated(manifest)
    samples = generated.samples()
    problems = generated.problems(samples)
    if problems:
        raise ValueError(problems_message(problems, str(manifest)))
    return samples


def process_seed(seed: int, rank: int, worker_seed: int | None) -> int:
    """The seed of the label choices of one process: ``seed`` itself on rank 0 outside DataLoader workers.

    Other ranks and every DataLoader worker get one derived from (seed, rank,
    worker seed), so no two processes of a run draw the same choices.
    """
    if rank == 0 and worker_seed is None:
        return int(seed)
    words = [_MMSEG_STREAM, int(seed), int(rank), 0 if worker_seed is None else 1, worker_seed or 0]
    return int(np.random.SeedSequence(words).generate_state(1, np.uint64)[0] >> 1)


class NsegaugManifestDataset(BaseSegDataset):
    """mmseg dataset of a ``nsegaug generate --images`` manifest: originals and deformed copies, offline.

    One sample per source image. Each time [`prepare_data`][nsegaug.mmseg.NsegaugManifestDataset.prepare_data] loads a
    sample for training, its ``seg_map_path`` is, with chance ``prob``, one of the
    sample's deformed copies (picked uniformly; copies that generate's own coin
    left unchanged do not count) and otherwise the original: the offline form
    of the method's online probability, by [`choose_label`][nsegaug.sampling.choose_label]
    as ``nsegaug train`` chooses. With ``test_mode=True`` it is always the
    original.

    Which label the n-th load (n = 0, 1, ...) of a sample in a process gets is
    drawn from ``sample_rng(process seed, n, sample key)``: per sample and per
    load, never from global state. The process seed is ``seed`` in the main
    process of rank 0, so with ``num_workers=0`` on one process the n-th pass over
    the data uses for every sample the label ``nsegaug train --seed`` uses in its
    epoch n, whatever the order or batch size. Each DataLoader worker (and each
    other rank) derives its own from (``seed``, rank, the worker's seed): torch
    draws new worker seeds each epoch (from the loader's generator, or torch's
    global one, which mmengine's ``randomness=dict(seed=...)`` seeds), and
    persistent workers keep theirs and count on. So every epoch draws afresh,
    and a run repeats exactly given the same ``seed``, randomness seed,
    ``num_workers``, sampler and batch size; which label a sample gets in a
    given epoch then depends on which worker loads it, so it is not the same
    as with another number of workers. ``seed=None`` draws each process's seed
    from the OS: a run is then not repeatable.

    Parameters
    ----------
    ann_file
        The manifest, ``OUT/manifest.jsonl`` of a ``nsegaug generate --images``
        run; joined to ``data_root`` when relative, as in any mmengine dataset.
        Label and image paths come from the folders recorded in
        ``manifest.meta.json`` (``data_prefix`` and the suffixes are not used).
    prob
        Chance of a deformed label per load, the method's p: 0.5 by default as
        in the paper (not generate's ``--prob``, which was about the copies).
    seed
        See above.
    **kwargs
        ``BaseSegDataset``'s: ``metainfo`` (classes, palette), ``pipeline``,
        ``reduce_zero_label`` (applied by ``LoadAnnotations`` to the chosen map,
        original or copy alike), ``ignore_index``, ``test_mode``, ``indices``, ...
    """

    def __init__(self, ann_file: str = "", prob: float = PAPER_PROB, seed: int | None = None, **kwargs) -> None:
        if not ann_file:
            raise ValueError(f"{DATASET_NAME} needs ann_file: the manifest.jsonl of a nsegaug generate --images run")
        check_prob(prob)
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be >= 0 or None, got {seed}")
        self.prob = float(prob)
        self.seed = seed
        self._uses: np.ndarray | None = None  # loads per sample in this process
        self._uses_pid: int | None = None
        self._process_seed: int | None = None
        super().__init__(ann_file=ann_file, **kwargs)

    def load_data_list(self) -> list[dict]:
        return [
            dict(
                img_path=str(sample.image),
                seg_map_path=str(sample.labels[0]),
                label_paths=[str(path) for path in sample.labels],
                deformed_copies=list(sample.deformed_copies),
                sample_key=sample.key,
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[],
            )
            for sample in manifest_samples(self.ann_file)
        ]

    def label_index(self, idx: int, use: int) -> int:
        """Which label (0 = the original) load number ``use`` of sample ``idx`` gets in this process."""
        info = self.get_data_info(idx)
        coin, pick = sample_rng(self._seed_of_this_process(), use, info["sample_key"]).random(2)
        return choose_label(coin, pick, info["deformed_copies"], self.prob, baseline=False)

    def prepare_data(self, idx: int):
        """The sample through the pipeline, with this load's label as ``seg_map_path`` (its index: ``label_copy``)."""
        data_info = self.get_data_info(idx)
        if not self.test_mode:
            uses = self._uses_in_this_process()
            copy = self.label_index(idx, int(uses[idx]))
            uses[idx] += 1
            data_info["seg_map_path"] = data_info["label_paths"][copy]
            data_info["label_copy"] = copy
        return self.pipeline(data_info)

    def _uses_in_this_process(self) -> np.ndarray:
        # A forked DataLoader worker starts counting afresh, and draws its own process seed.
        if self._uses is None or self._uses_pid != os.getpid():
            self._uses = np.zeros(len(self), dtype=np.int64)
            self._uses_pid = os.getpid()
            self._process_seed = None
        return self._uses

    def _seed_of_this_process(self) -> int:
        self._uses_in_this_process()
        if self._process_seed is None:
            seed = self.seed if self.seed is not None else secrets.randbits(63)
            self._process_seed = process_seed(seed, *process_identity())
        return self._process_seed


def register(transforms=TRANSFORMS, datasets=DATASETS) -> None:
    """Register [`NoisySegmentPlus`][nsegaug.transform.NoisySegmentPlus] and
    [`NsegaugManifestDataset`][nsegaug.mmseg.NsegaugManifestDataset]; nothing to do where they already are.

    Another class under one of these names (the method's own code, say) is
    replaced, with a warning: importing this module is asking for nsegaug's.
    """
    entries = ((transforms, NAME, NoisySegmentPlus), (datasets, DATASET_NAME, NsegaugManifestDataset))
    for registry, name, module in entries:
        registered = registry.module_dict.get(name)
        if registered is module:
            continue
        if registered is not None:
            warnings.warn(
                f"nsegaug.mmseg replaces the {registered.__module__}.{registered.__qualname__} registered as {name!r}",
                stacklevel=2,
            )
        registry.register_module(name=name, module=module, force=True)


register()

__all__ = [
    "DATASETS",
    "DATASET_NAME",
    "NAME",
    "NoisySegmentPlus",
    "NsegaugManifestDataset",
    "TRANSFORMS",
    "manifest_samples",
    "process_seed",
    "register",
]
