# DINO's boosted 300-epoch ViT-S/16 recipe for RATS-S/16: as the 100-epoch recipe
# (dino_rats_vits16_in1k.py) but 300 epochs, teacher temperature warmed up 0.04 -> 0.07 over
# 30 epochs, and a last layer whose norm is learned (norm_last_layer=False), as DINO's README
# gives it (--epochs 300 --teacher_temp 0.07 --warmup_teacher_temp_epochs 30
# --norm_last_layer false). Entries computed from the iteration count are re-declared here:
# a child config cannot re-evaluate its parent's expressions.
#   bash tools/dist_pretrain.sh configs/dino_rats_vits16_in1k_300e.py 8
_base_ = ['./dino_rats_vits16_in1k.py']

iters_per_epoch = 1281167 // (8 * 64)  # images // (GPUs x batch per GPU), as the parent
max_iters = 300 * iters_per_epoch
warmup_iters = 10 * iters_per_epoch

model = dict(head=dict(norm_last_layer=False))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=warmup_iters,
         end=max_iters),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=False, begin=0, end=max_iters),
]
eval_pipeline = dict(type='EvalTransform', size=224)
custom_hooks = [
    dict(type='DINOScheduleHook', momentum=(0.996, 1.0), teacher_temp=(0.04, 0.07),
         teacher_temp_warmup_iters=30 * iters_per_epoch),
    dict(type='ThroughputHook'),
    dict(type='CollapseMonitorHook', patience=1000),
    dict(type='PlainCheckpointHook'),
    dict(type='RegisterAttentionMonitorHook', interval=iters_per_epoch),
    # what moves first if DINO goes wrong (docs/parts.md,
    # "From symptom to cause: the collapse diagnostics")
    dict(type='CollapseDiagnosticsHook', interval=iters_per_epoch),
    dict(type='KNNMonitorHook', interval=30 * iters_per_epoch, k=20, batch_size=256,
         num_workers=8,
         bank=dict(type='ImageFolderDataset', data_root='data/imagenet',
                   ann_file='knn_bank.txt', pipeline=eval_pipeline),
         query=dict(type='ImageFolderDataset', data_root='data/imagenet/val',
                    pipeline=eval_pipeline)),
]
