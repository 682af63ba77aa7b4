# What nsp_online.py and nsp_manifest.py share: a small U-Net, the example data's validation
# images, a short CPU schedule. No pretrained weights: nothing is downloaded.
# Paths are relative to the repository root: run from there (see README.md).
default_scope = "mmseg"
custom_imports = dict(imports=["nsegaug.mmseg"], allow_failed_imports=False)

data_root = "examples/data"
norm_cfg = dict(type="BN", requires_grad=True)  # SyncBN on several GPUs
model = dict(
    type="EncoderDecoder",
    data_preprocessor=dict(
        type="SegDataPreProcessor",
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size_divisor=4,
    ),
    # Three stages, 8 channels: about 30k parameters, enough to check a setup on a CPU.
    backbone=dict(
        type="UNet",
        in_channels=3,
        base_channels=8,
        num_stages=3,
        strides=(1, 1, 1),
        enc_num_convs=(2, 2, 2),
        dec_num_convs=(2, 2),
        downsamples=(True, True),
        enc_dilations=(1, 1, 1),
        dec_dilations=(1, 1),
        norm_cfg=norm_cfg,
        upsample_cfg=dict(type="InterpConv"),
    ),
    decode_head=dict(
        type="FCNHead",
        in_channels=8,
        in_index=2,
        channels=8,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
    ),
    train_cfg=dict(),
    test_cfg=dict(mode="whole"),
)

# Training batches; the child configs add the dataset (with its pipeline), the part where they differ.
train_dataloader = dict(
    batch_size=2,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type="InfiniteSampler", shuffle=True),
)

# Validation: the example data's 20 validation images, half size, against the full-size labels.
# CityscapesDataset brings the 19 classes and their palette; the example files are .jpg and .png.
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type="DefaultSampler", shuffle=False),
    dataset=dict(
        type="CityscapesDataset",
        data_root=data_root,
        data_prefix=dict(img_path="val/images", seg_map_path="val/labels"),
        img_suffix=".jpg",
        seg_map_suffix=".png",
        pipeline=[
            dict(type="LoadImageFromFile"),
            dict(type="Resize", scale=(256, 128), keep_ratio=True),
            dict(type="LoadAnnotations"),
            dict(type="PackSegInputs"),
        ],
    ),
)
val_evaluator = dict(type="IoUMetric", iou_metrics=["mIoU"])

max_iters = 200
train_cfg = dict(type="IterBasedTrainLoop", max_iters=max_iters, val_interval=max_iters)
val_cfg = dict(type="ValLoop")
optim_wrapper = dict(type="OptimWrapper", optimizer=dict(type="SGD", lr=0.01, momentum=0.9, weight_decay=0.0005))
param_scheduler = [dict(type="PolyLR", eta_min=1e-4, power=0.9, begin=0, end=max_iters, by_epoch=False)]

default_hooks = dict(
    timer=dict(type="IterTimerHook"),
    logger=dict(type="LoggerHook", interval=20, log_metric_by_epoch=False),
    param_scheduler=dict(type="ParamSchedulerHook"),
    checkpoint=dict(type="CheckpointHook", by_epoch=False, interval=max_iters),
    sampler_seed=dict(type="DistSamplerSeedHook"),
)
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method="fork", opencv_num_threads=0))
log_processor = dict(by_epoch=False)
log_level = "INFO"
load_from = None
resume = False
randomness = dict(seed=0)
