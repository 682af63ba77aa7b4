"""The offline sampling rule: which of a mask's K + 1 labels (the original and its K copies) an epoch trains on.

Offline, the method's online probability ``p`` becomes a choice among files:
in each epoch a sample trains on one of its deformed copies with chance
``prob``, picked uniformly, and on its original otherwise
([`choose_label`][nsegaug.sampling.choose_label]). The coin and the pick
are drawn from [`sample_rng`][nsegaug.sampling.sample_rng], a stream of
(seed, epoch, sample key) only, so a sample gets the same label in any
worker, on any rank, and after a resume. ``nsegaug train`` and the
mmsegmentation dataset ([`nsegaug.mmseg`][nsegaug.mmseg]) both choose by
this rule; a training loop of your own can too, on the samples of
[`open_generated`][nsegaug.manifest.open_generated]. Which copies exist
and how each was deformed: [`nsegaug.copies`][nsegaug.copies].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .seeding import key_words

if TYPE_CHECKING:
    from .manifest import ImageSample

# Keeps the label-choice streams apart from generate's (seed, path, copy) streams.
_TRAIN_STREAM = 0x6E736774  # "nsgt"


def sample_rng(seed: int, epoch: int, key: str) -> np.random.Generator:
    """The random stream of one sample in one epoch: label choice first, then crop, scale and flip.

    Derived from (seed, epoch, sample key) only, never from global state, so
    a sample is treated the same in any worker, on any rank, and after resume.
    """
    return np.random.default_rng(np.random.SeedSequence([_TRAIN_STREAM, int(seed), int(epoch), *key_words(key)]))


def choose_label(coin: float, pick: float, deformed_copies: Sequence[int], prob: float, baseline: bool) -> int:
    """Which label an epoch trains on: 0 (the original) or the index of a deformed copy.

    ``prob`` is the chance of a deformed label, the offline form of the
    method's online probability: with ``coin < prob`` one of the deformed
    copies, picked uniformly by ``pick`` in [0, 1). Copies that generate's own
    coin left unchanged are byte-identical to the original, so they are not
    counted as deformed ones. Callers draw ``coin`` and ``pick`` whatever the
    outcome, so ``baseline`` changes nothing else in the stream.
    """
    if baseline or coin >= prob or not deformed_copies:
        return 0
    return int(deformed_copies[min(int(pick * len(deformed_copies)), len(deformed_copies) - 1)])


def chosen_labels(samples: Sequence[ImageSample], seed: int, epoch: int, prob: float, baseline: bool) -> list[int]:
    """The label index each sample uses in ``epoch`` (as ``nsegaug train`` draws it); for logs and tests."""
    choices = []
    for sample in samples:
        rng = sample_rng(seed, epoch, sample.key)
        coin, pick = rng.random(2)
        choices.append(choose_label(coin, pick, sample.deformed_copies, prob, baseline))
    return choices
