"""``NoisySegmentPlus`` as an albumentations transform: deforms the masks, leaves everything else alone.

Needs the ``[albumentations]`` extra. Use it like any transform::

    import albumentations as A
    from nsegaug.albumentations import NoisySegmentPlus

    pipeline = A.Compose([A.RandomCrop(512, 512), NoisySegmentPlus(ignore_index=255, p=0.5)], seed=0)
    out = pipeline(image=image, mask=mask)  # out["image"] is image; out["mask"] is deformed half the time
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    import albumentations as A
except ImportError as error:
    raise ImportError("nsegaug.albumentations needs albumentations: pip install 'nsegaug[albumentations]'") from error

from .deform import deform_labels
from .params import DEFAULT_ENGINE, PAPER_PROB, DeformParams, FlatParams


class NoisySegmentPlus(FlatParams, A.DualTransform):
    """Label-only elastic deformation with scale-aware suppression (NSegment+), for ``A.Compose``.

    Only ``mask`` and ``masks`` change; ``image``, ``images``, volumes,
    ``bboxes`` and ``keypoints`` are returned as they came (the method
    deforms labels only). ``p`` is the method's probability (0.5, the
    paper's). Each application draws one 128-bit seed from the transform's
    own generator (``self.random_generator``, which ``A.Compose(...,
    seed=...)`` seeds), and every mask of the sample is deformed by
    [`nsegaug.deform.deform`][nsegaug.deform.deform] from a ``RandomState`` of that seed: the
    same noise and (alpha, sigma) for all of them, each with the suppression
    around its own small components. A mask with channels (H, W, C) is
    deformed channel by channel in the same way. The other parameters are
    those of [`nsegaug.NoisySegmentPlus`][nsegaug.transform.NoisySegmentPlus].
    """

    def __init__(
        self,
        alpha_sigma_list: Sequence[tuple[float, float]] | None = None,
        area_thresh: float = 1000,
        ignore_index: int | None = None,
        variant: str = "nsegment+",
        precision: str = "float32",
        p: float = PAPER_PROB,
        engine: int = DEFAULT_ENGINE,
    ) -> None:
        super().__init__(p=p)
        self.deform_params = DeformParams.from_flat(
            alpha_sigma_list, area_thresh, ignore_index, variant, precision, engine
        )

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("alpha_sigma_list", "area_thresh", "ignore_index", "variant", "precision", "engine")

    def get_params(self) -> dict[str, Any]:
        # albumentations 2 gives each transform its own generator, seeded by Compose(seed=...); older
        # releases drew from NumPy's global state, which nsegaug never uses.
        generator = getattr(self, "random_generator", None)
        if generator is None:
            raise RuntimeError("nsegaug.albumentations needs albumentations >= 2.0 (a per-transform random generator)")
        words = generator.integers(0, 2**32, size=4, dtype=np.uint64)
        return {"deform_seed": words.astype(np.uint32)}

    def apply_to_mask(self, mask: np.ndarray, deform_seed: np.ndarray, **params: Any) -> np.ndarray:
        if mask.ndim == 3:
            return np.stack([self.apply_to_mask(mask[..., c], deform_seed) for c in range(mask.shape[2])], axis=2)
        return deform_labels(mask, np.random.RandomState(deform_seed), self.deform_params)

    def apply_to_masks(self, masks: Any, deform_seed: np.ndarray, **params: Any) -> Any:
        deformed = [self.apply_to_mask(mask, deform_seed) for mask in masks]
        return np.stack(deformed) if isinstance(masks, np.ndarray) else deformed

    # The method is label-only: everything that is not a mask passes through untouched (not even copied).

    def apply(self, img: np.ndarray, **params: Any) -> np.ndarray:
        return img

    def apply_to_images(self, images: Any, **params: Any) -> Any:
        return images

    def apply_to_volume(self, volume: np.ndarray, **params: Any) -> np.ndarray:
        return volume

    def apply_to_volumes(self, volumes: np.ndarray, **params: Any) -> np.ndarray:
        return volumes

    def apply_to_bboxes(self, bboxes: Any, **params: Any) -> Any:
        return bboxes

    def apply_to_keypoints(self, keypoints: Any, **params: Any) -> Any:
        return keypoints
