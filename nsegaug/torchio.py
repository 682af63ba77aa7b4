"""``NoisySegmentPlus`` for TorchIO: NSegment+ on a subject's ``LabelMap``s, never its ``ScalarImage``s.

TorchIO's conventions: a random transform draws its parameters from torch's
random generator (so ``torch.manual_seed`` repeats a pipeline) and applies a
deterministic transform made from them, which is what the subject's history
records: [`NoisySegmentPlus`][nsegaug.torchio.NoisySegmentPlus] draws a seed (and TorchIO's base class the
``p`` coin) and applies [`LabelDeformation`][nsegaug.torchio.LabelDeformation] with it, so
``subject.get_composed_history()`` replays the deformation exactly. The
deformation is not invertible (the labels' noise is the point), so it is
left out of ``subject.apply_inverse_transform()``. Label maps are
resampled by nearest neighbour only; ``units="mm"`` reads each map's spacing.
Needs the ``torchio`` extra.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
import torchio as tio
from torchio.transforms.augmentation import RandomTransform

from .params import DEFAULT_AREA_THRESH, DeformParams
from .volume.channels import class_volume, deform_channel_first
from .volume.engine import draw_volume_deformation

_ARGS = ("seed", "alpha_sigma_list", "area_thresh", "ignore_index", "variant", "precision", "units")


class LabelDeformation(tio.Transform):
    """The deterministic deformation of a subject's label maps by the draws of ``RandomState(seed)``: every
    ``LabelMap`` gets the same draw (each suppressed around its own small objects); other images are left."""

    def __init__(
        self,
        seed: int,
        alpha_sigma_list: Iterable[Sequence[float]] | None = None,
        area_thresh: float = DEFAULT_AREA_THRESH,
        ignore_index: int | None = None,
        variant: str = "nsegment+",
        precision: str = "float32",
        units: str = "voxels",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        params = DeformParams.from_flat(alpha_sigma_list, area_thresh, ignore_index, variant, precision)
        self.deform_params = params.replace(units=units)
        self.seed = int(seed)
        self.alpha_sigma_list = [list(pair) for pair in self.deform_params.alpha_sigma]
        self.area_thresh, self.ignore_index = area_thresh, ignore_index
        self.variant, self.precision, self.units = variant, precision, units
        self.args_names = list(_ARGS)

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        images = subject.get_images_dict(intensity_only=False, include=self.include, exclude=self.exclude)
        labels = [(name, image) for name, image in images.items() if isinstance(image, tio.LabelMap)]
        if not labels:
            return subject
        shape = class_volume(labels[0][1].numpy(), labels[0][0]).shape
        draw = draw_volume_deformation(np.random.RandomState(self.seed), shape, self.deform_params)
        for name, image in labels:
            spacing = image.spacing if self.units == "mm" else None
            deformed = deform_channel_first(image.numpy(), draw, self.deform_params, spacing, name)
            image.set_data(torch.from_numpy(np.ascontiguousarray(deformed)))
        return subject


class NoisySegmentPlus(RandomTransform):
    """Label-only elastic deformation with 3D small-object suppression (NSegment+) of a subject's label maps.

    ``alpha_sigma_list``, ``area_thresh`` (a volume: voxels, or mm³ with
    ``units="mm"``), ``ignore_index``, ``variant``, ``precision`` and
    ``units`` are those of [`nsegaug.params.DeformParams`][nsegaug.params.DeformParams]; ``p`` and the
    other keyword arguments are TorchIO's (``p=0.5`` is the paper's).
    """

    def __init__(
        self,
        alpha_sigma_list: Iterable[Sequence[float]] | None = None,
        area_thresh: float = DEFAULT_AREA_THRESH,
        ignore_index: int | None = None,
        variant: str = "nsegment+",
        precision: str = "float32",
        units: str = "voxels",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.deform_params = DeformParams.from_flat(
            alpha_sigma_list, area_thresh, ignore_index, variant, precision
        ).replace(units=units)
        self.arguments = {
            "alpha_sigma_list": [list(pair) for pair in self.deform_params.alpha_sigma],
            "area_thresh": area_thresh,
            "ignore_index": ignore_index,
            "variant": variant,
            "precision": precision,
            "units": units,
        }
        self.args_names = list(self.arguments)
        for name, value in self.arguments.items():
            setattr(self, name, value)

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        transform = LabelDeformation(self._get_random_seed(), **self.arguments, **self._get_base_args())
        return transform(subject)
