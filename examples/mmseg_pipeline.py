"""nsegaug with mmsegmentation (1.x): online in a pipeline, or offline on `nsegaug generate`'s copies.

Online, as in the paper: ``NoisySegmentPlus`` deforms ``results["gt_seg_map"]`` after
``LoadAnnotations``; register it once and name it in the config (see TRAIN_PIPELINE).

Offline: ``nsegaug generate`` wrote K copies of every label map and a manifest.
``ManifestSegDataset`` below lists (image, label) pairs from that manifest, the
original and each copy, so an mmseg dataset trains on the copies without
renaming any file. Put this file where your config can import it
(``custom_imports = dict(imports=["mmseg_pipeline"])``).

Run it without mmsegmentation installed to see the pipeline and the pairs it would train on:

    nsegaug generate --labels examples/data/train/labels --images examples/data/train/images --copies 2 --out out/train
    python examples/mmseg_pipeline.py out/train/manifest.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nsegaug import NoisySegmentPlus
from nsegaug.manifest import open_manifest
from nsegaug.palettes import CITYSCAPES, CITYSCAPES_NAMES

TRAIN_PIPELINE = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    # The method: label-only elastic deformation with small-object suppression, p = 0.5.
    # seed=None draws fresh entropy per DataLoader worker; an int makes runs repeatable.
    dict(type="NoisySegmentPlus", prob=0.5, area_thresh=1000, ignore_index=255, seed=None),
    dict(type="RandomResize", scale=(1024, 512), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=(256, 256), cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]


def manifest_pairs(manifest: Path, copies: str = "all") -> list[dict]:
    """``{"img_path", "seg_map_path"}`` per manifest row: the originals (copy 0) and their copies.

    ``copies="deformed"`` leaves the originals out. Paths are absolute, from the
    folders recorded in ``manifest.meta.json``.
    """
    opened = open_manifest(manifest)
    labels, images = opened.folder("labels"), opened.folder("images")
    if images is None:
        raise ValueError(f"{manifest}: generated without --images, so it does not know the images")
    pairs = []
    for row in opened.rows():
        if row.image is None or (copies == "deformed" and row.copy == 0):
            continue
        label = labels / row.label if row.output is None else opened.root / row.output
        pairs.append({"img_path": str(images / row.image), "seg_map_path": str(label)})
    return pairs


def register() -> None:
    """Register NoisySegmentPlus and ManifestSegDataset with mmsegmentation's registries."""
    from mmseg.datasets import BaseSegDataset
    from mmseg.registry import DATASETS, TRANSFORMS

    TRANSFORMS.register_module(module=NoisySegmentPlus, force=True)

    @DATASETS.register_module(force=True)
    class ManifestSegDataset(BaseSegDataset):
        """A Cityscapes-classes dataset whose samples are the rows of an nsegaug manifest."""

        METAINFO = dict(classes=CITYSCAPES_NAMES, palette=CITYSCAPES.tolist())

        def __init__(self, manifest: str, copies: str = "all", **kwargs) -> None:
            self.manifest, self.copies = manifest, copies
            super().__init__(**kwargs)

        def load_data_list(self) -> list[dict]:
            return [
                dict(pair, label_map=self.label_map, reduce_zero_label=False, seg_fields=[])
                for pair in manifest_pairs(Path(self.manifest), self.copies)
            ]


def main(argv: list[str]) -> int:
    try:
        register()
        print("registered NoisySegmentPlus and ManifestSegDataset with mmsegmentation")
    except ImportError:
        print("mmsegmentation is not installed: showing the config only")
    print("train_pipeline =", json.dumps(TRAIN_PIPELINE, indent=2))
    if argv:
        pairs = manifest_pairs(Path(argv[0]))
        print(f"{len(pairs)} (image, label) pairs from {argv[0]}, e.g.:")
        for pair in pairs[:3]:
            print(f"  {pair['img_path']}  ->  {pair['seg_map_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
