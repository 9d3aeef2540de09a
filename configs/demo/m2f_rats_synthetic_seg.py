# Demo: Mask2Former with register queries on the synthetic data in ADE20K layout, fine-tuned
# from the demo RATS (work_dirs/demo/backbone.pth, made by `make demo` or
# tools/export_backbone.py; random init when absent). Trains on 2 CPU cores in a few minutes:
#   python tools/train.py configs/demo/m2f_rats_synthetic_seg.py
#   python tools/test.py configs/demo/m2f_rats_synthetic_seg.py \
#       work_dirs/m2f_rats_synthetic_seg/iter_600.pth
_base_ = ['../m2f_rats_ade20k.py']

data_root = 'data/synthetic'
pretrained = 'work_dirs/demo/backbone.pth'
crop_size = (96, 96)
num_classes = 7  # background + 6 object categories
embed_dim, depth, num_heads, num_registers = 96, 4, 3, 12  # the pretraining demo's RATS
num_extra_queries = 4
feat_channels = 64
max_iters = 600
schedule_batch = None  # this schedule is for its own batch (1 process x 8 images)

model = dict(
    data_preprocessor=dict(size=crop_size),
    test_cfg=dict(_delete_=True, mode='whole'),  # 96 px images: one window is the image
    backbone=dict(
        img_size=64, patch_size=8, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        num_registers=num_registers, drop_path_rate=0.0, out_indices=(0, 1, 2, 3),
        init_cfg=dict(checkpoint=pretrained, skip_if_missing=True)),
    # patch 8: the maps are at stride 8, so scales 2 .. 1/4 give strides 4 .. 32
    neck=dict(in_channels=embed_dim, out_channels=feat_channels,
              scale_factors=(2.0, 1.0, 0.5, 0.25)),
    decode_head=dict(
        in_channels=[feat_channels] * 4, feat_channels=feat_channels,
        out_channels=feat_channels, num_classes=num_classes,
        num_queries=num_registers + num_extra_queries,
        register_queries=dict(in_channels=embed_dim, num_registers=num_registers,
                              num_extra_queries=num_extra_queries),
        pixel_decoder=dict(
            encoder=dict(num_layers=2, layer_cfg=dict(
                self_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
                ffn_cfg=dict(embed_dims=feat_channels, feedforward_channels=128))),
            positional_encoding=dict(num_feats=feat_channels // 2)),
        positional_encoding=dict(num_feats=feat_channels // 2),
        transformer_decoder=dict(num_layers=3, layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
            cross_attn_cfg=dict(embed_dims=feat_channels, num_heads=4),
            ffn_cfg=dict(embed_dims=feat_channels, feedforward_channels=128))),
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1]),
        train_cfg=dict(num_points=2304)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='RandomResize', scale=crop_size, ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=False),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(type='SyntheticPartsSegDataset', data_root=data_root,
                 data_prefix=dict(img_path='images/training',
                                  seg_map_path='annotations/training'),
                 pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(type='SyntheticPartsSegDataset', data_root=data_root,
                 data_prefix=dict(img_path='images/validation',
                                  seg_map_path='annotations/validation'),
                 pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(num_layers=depth))
param_scheduler = [dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20),
                     checkpoint=dict(by_epoch=False, interval=200, save_best=None))
