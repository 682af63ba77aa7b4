# NSegment+ online, as in the paper: the example data's original labels, and NoisySegmentPlus
# deforming gt_seg_map in the pipeline, a fresh deformation each time a sample is loaded.
_base_ = ["./base.py"]

crop_size = (64, 64)
train_pipeline = [
    dict(type="LoadImageFromFile"),
    dict(type="LoadAnnotations"),
    # The method: p = 0.5, theta = 1000 px, the paper's 15 (alpha, sigma) pairs; 255 is the ignore index.
    # seed: the transform's own stream per process (rank, DataLoader worker seed); None: fresh entropy.
    dict(type="NoisySegmentPlus", prob=0.5, area_thresh=1000, ignore_index=255, seed=0),
    dict(type="RandomResize", scale=(512, 256), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type="RandomCrop", crop_size=crop_size, cat_max_ratio=0.75),
    dict(type="RandomFlip", prob=0.5),
    dict(type="PackSegInputs"),
]
train_dataloader = dict(  # batch size, workers and sampler: base.py
    dataset=dict(
        type="CityscapesDataset",
        data_root="examples/data",
        data_prefix=dict(img_path="train/images", seg_map_path="train/labels"),
        img_suffix=".jpg",
        seg_map_suffix=".png",
        pipeline=train_pipeline,
    ),
)
