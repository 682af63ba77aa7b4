"""Random streams derived from (base seed, sample key, copy index).

Every copy of every sample gets its own ``RandomState``, whose seed depends
only on the base seed, the sample's relative path and the copy index, so a
result never depends on worker count, order, process, or platform.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import PurePath

import numpy as np


def sample_key(relative_path: str | PurePath) -> str:
    """Normalise a relative path to the key used for seeding.

    POSIX separators, so ``a\\b.png`` on Windows and ``a/b.png`` elsewhere
    give the same stream.
    """
    text = str(relative_path).replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    return text


def key_words(relative_path: str | PurePath) -> list[int]:
    """A stable 128-bit hash of the sample key, as four 32-bit words.

    sha256, not Python's ``hash()``, which is salted per process.
    """
    digest = hashlib.sha256(sample_key(relative_path).encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def random_state(seed: int, relative_path: str | PurePath, copy_index: int) -> np.random.RandomState:
    """The ``RandomState`` for copy ``copy_index`` of the sample at ``relative_path``.

    NumPy's ``SeedSequence`` mixes the three parts into MT19937's initial
    state; both algorithms are frozen by NumPy's compatibility policy.
    """
    if seed < 0 or copy_index < 0:
        raise ValueError(f"seed and copy index must be >= 0, got {seed} and {copy_index}")
    sequence = np.random.SeedSequence([int(seed), *key_words(relative_path), int(copy_index)])
    return np.random.RandomState(sequence.generate_state(8))


def process_identity() -> tuple[int, int | None]:
    """What tells this process apart from the others of a training run: (rank, DataLoader worker seed).

    The rank is the distributed launcher's ``RANK`` (0 without one). The
    worker seed is None outside a torch DataLoader worker; inside one it is
    the worker's seed, which torch draws anew for every epoch's workers (from
    the loader's generator, or torch's global one: a seeded run repeats them)
    and keeps for persistent workers. torch is not imported here: a process
    that has not loaded ``torch.utils.data`` cannot be one of its workers.
    """
    rank = int(os.environ.get("RANK", "0"))
    torch_data = sys.modules.get("torch.utils.data")
    info = torch_data.get_worker_info() if torch_data is not None else None
    return rank, (None if info is None else int(info.seed))
