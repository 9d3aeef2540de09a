# Demo: Mask2Former instance segmentation with register queries on the synthetic data's COCO
# instances, fine-tuned from the demo RATS (work_dirs/demo/backbone.pth, made by `make demo` or
# tools/export_backbone.py; random init when absent).
#   python tools/train.py configs/demo/m2f_rats_synthetic_ins.py
#   python tools/test.py configs/demo/m2f_rats_synthetic_ins.py \
#       work_dirs/m2f_rats_synthetic_ins/iter_600.pth
_base_ = ['../m2f_rats_coco.py']

data_root = 'data/synthetic/'
pretrained = 'work_dirs/demo/backbone.pth'
image_size = (96, 96)
num_things_classes, num_stuff_classes = 6, 0
num_classes = num_things_classes + num_stuff_classes
embed_dim, depth, num_heads, num_registers = 96, 4, 3, 12  # the pretraining demo's RATS
num_extra_queries = 4
feat_channels = 64
max_iters = 600
schedule_batch = None  # this schedule is for its own batch (1 process x 8 images)

model = dict(
    data_preprocessor=dict(batch_augments=[dict(
        type='BatchFixedSizePad', size=image_size, img_pad_value=0, pad_mask=True,
        mask_pad_value=0, pad_seg=False)]),
    backbone=dict(
        img_size=64, patch_size=8, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
        num_registers=num_registers, drop_path_rate=0.0, out_indices=(0, 1, 2, 3),
        init_cfg=dict(checkpoint=pretrained, skip_if_missing=True)),
    neck=dict(in_channels=embed_dim, out_channels=feat_channels,
              scale_factors=(2.0, 1.0, 0.5, 0.25)),  # patch 8: strides 4 .. 32
    panoptic_head=dict(
        in_channels=[feat_channels] * 4, feat_channels=feat_channels,
        out_channels=feat_channels, num_things_classes=num_things_classes,
        num_stuff_classes=num_stuff_classes,
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
        loss_cls=dict(class_weight=[1.0] * num_classes + [0.1])),
    panoptic_fusion_head=dict(num_things_classes=num_things_classes,
                              num_stuff_classes=num_stuff_classes),
    train_cfg=dict(num_points=2304),
    test_cfg=dict(max_per_image=20))

train_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-5, 1e-5), by_mask=True),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', to_float32=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    # 'instances': the raw annotations CocoMetric(ann_file=None) builds its ground truth from
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor', 'instances'))
]
train_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(type='SyntheticPartsCocoDataset', data_root=data_root,
                 ann_file='instances_training.json',
                 data_prefix=dict(img='images/training/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=2,
    dataset=dict(type='SyntheticPartsCocoDataset', data_root=data_root,
                 ann_file='instances_validation.json',
                 data_prefix=dict(img='images/validation/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
# ann_file=None: the ground truth comes from the evaluated dataset itself, so overriding
# val/test_dataloader.dataset.data_root is enough to evaluate another generated set
val_evaluator = dict(_delete_=True, type='CocoMetric', ann_file=None,
                     metric=['bbox', 'segm'], format_only=False)
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=2e-4), paramwise_cfg=dict(num_layers=depth))
param_scheduler = [dict(type='PolyLR', eta_min=0, power=0.9, begin=0, end=max_iters,
                        by_epoch=False)]
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters,
                 val_interval=max_iters)
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(by_epoch=False, interval=200))
