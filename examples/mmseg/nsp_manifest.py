# NSegment+ offline: the copies `nsegaug generate` wrote. Make them first, from the repository root:
#   nsegaug generate --labels examples/data/train/labels --images examples/data/train/images \
#       --copies 5 --ignore-index 255 --out out/mmseg/train
# Each time a sample is loaded, its label is one of its deformed copies with chance prob, else the original.
_base_ = ["./base.py"]

crop_size = (64, 64)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),  # loads the label the dataset chose for this load
    dict(type="RandomResize", scale=(512, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(  # batch size, workers and sampler: base.py
    dataset=dict(
        type="NsegaugManifestDataset",
        ann_file="out/mmseg/train/manifest.jsonl",
        prob=0.5,  # the method's p (the paper's 0.5)
        seed=0,  # the label choices' stream (see nsegaug.mmseg.NsegaugManifestDataset); None: fresh entropy
        # metainfo=dict(classes=(...), palette=[...]), reduce_zero_label, ignore_index: as for any mmseg dataset.
        pipeline=train_pipeline,
    ),
)
