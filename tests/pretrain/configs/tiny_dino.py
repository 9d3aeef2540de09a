# The demo pretraining config shrunk for tests: 32 px crops, 1 block, small head.
_base_ = ['../../../configs/demo/dino_rats_synthetic.py']

model = dict(backbone=dict(img_size=32, embed_dim=32, depth=1, num_heads=2, num_registers=4),
             head=dict(out_dim=64, hidden_dim=32, bottleneck_dim=16),
             freeze_last_layer_iters=1)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(pipeline=dict(global_crop_size=32, local_crop_size=16,
                                                   local_crops_number=2)))
eval_pipeline = dict(type='EvalTransform', size=32, crop_ratio=1.0)
custom_hooks = [
    dict(type='DINOScheduleHook', teacher_temp_warmup_iters=2),
    dict(type='ThroughputHook'),
    dict(type='PlainCheckpointHook'),
    dict(type='KNNMonitorHook', interval=0, k=3, batch_size=8,
         bank=dict(type='ImageFolderDataset', ann_file='labels/training.txt',
                   pipeline=eval_pipeline),
         query=dict(type='ImageFolderDataset', ann_file='labels/validation.txt',
                    pipeline=eval_pipeline)),
]
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
