"""``NoisySegmentPlusd``: NSegment+ on the label keys of a MONAI dictionary pipeline (3D volumes).

A MONAI dictionary transform (``MapTransform``) that follows MONAI's
conventions for randomness: every random number comes from ``self.R``, a
``numpy.random.RandomState`` that ``set_random_state(seed)`` seeds (as
``Compose.set_random_state`` and ``monai.utils.set_determinism`` do for
every transform of a pipeline), and all of them are drawn in
[`NoisySegmentPlusd.randomize`][nsegaug.monai.NoisySegmentPlusd.randomize]: the ``prob`` coin, then the fields and
the (alpha, sigma) pair ([`nsegaug.volume.engine.draw_volume_deformation`][nsegaug.volume.draw_volume_deformation]).
Only the keys named are changed, and all of them by the same draw; images
are never touched. Labels are (1, X, Y, Z) tensors or arrays of class values,
resampled by nearest neighbour only; with ``units="mm"`` the spacing is read
from each ``MetaTensor``'s affine. Needs the ``monai`` extra.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform

from .params import DEFAULT_AREA_THRESH, PAPER_PROB, DeformParams
from .volume.channels import class_volume, deform_channel_first
from .volume.engine import VolumeDraw, draw_volume_deformation


class NoisySegmentPlusd(RandomizableTransform, MapTransform):
    """Label-only elastic deformation with 3D small-object suppression, on the label keys ``keys``.

    ``alpha_sigma_list``, ``area_thresh``, ``ignore_index``, ``variant``,
    ``precision`` and ``units`` are those of [`nsegaug.params.DeformParams`][nsegaug.params.DeformParams]
    (``area_thresh`` is a volume: voxels, or mm³ with ``units="mm"``);
    ``prob`` is the chance a sample is deformed (the paper's 0.5).
    """

    backend = ("torch", "numpy")

    def __init__(
        self,
        keys: KeysCollection,
        alpha_sigma_list: Iterable[Sequence[float]] | None = None,
        prob: float = PAPER_PROB,
        area_thresh: float = DEFAULT_AREA_THRESH,
        ignore_index: int | None = None,
        variant: str = "nsegment+",
        precision: str = "float32",
        units: str = "voxels",
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        params = DeformParams.from_flat(alpha_sigma_list, area_thresh, ignore_index, variant, precision)
        self.deform_params = params.replace(units=units)
        self._draw: VolumeDraw | None = None

    def randomize(self, shape: tuple[int, int, int]) -> None:
        """Draw, from ``self.R``: the coin, then (if it says deform) the fields and the pair."""
        super().randomize(None)
        self._draw = draw_volume_deformation(self.R, shape, self.deform_params) if self._do_transform else None

    def __call__(self, data: Mapping[Hashable, object]) -> dict[Hashable, object]:
        d = dict(data)
        keys = list(self.key_iterator(d))
        if not keys:
            return d
        shapes = {key: class_volume(np.asarray(_array(d[key])), str(key)).shape for key in keys}
        if len(set(shapes.values())) > 1:
            raise ValueError(f"NoisySegmentPlusd: label keys of different shapes {shapes}; one draw serves them all")
        self.randomize(shapes[keys[0]])
        if self._draw is None:
            return d
        for key in keys:
            d[key] = self._deformed(d[key], str(key))
        return d

    def _deformed(self, label, name: str):
        values = np.asarray(_array(label))
        spacing = _spacing(label) if self.deform_params.units == "mm" else None
        deformed = deform_channel_first(values, self._draw, self.deform_params, spacing, name)
        if isinstance(label, np.ndarray):
            return deformed
        out = label.clone()  # a MetaTensor keeps its affine and metadata
        out.copy_(out.new_tensor(deformed))
        return out


def _array(label) -> np.ndarray:
    return label.detach().cpu().numpy() if hasattr(label, "detach") else label


def _spacing(label) -> tuple[float, float, float]:
    affine = getattr(label, "affine", None)
    if affine is None:
        raise ValueError("units mm need each label's spacing: give MetaTensors (LoadImaged), not bare arrays")
    from monai.data.utils import affine_to_spacing

    return tuple(float(side) for side in np.asarray(affine_to_spacing(affine, r=3)))
