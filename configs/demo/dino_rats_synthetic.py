# Demo: a tiny RATS pretrained with DINO on generated images of single objects (no
# downloads), sized for 2 CPU cores. `make demo` runs all
# of this; by hand, make the data first:
#   python tools/make_synthetic.py data/synthetic_objects --num-images 2000 --size 96 \
#       --seed 0 --layout isolated
#   python tools/pretrain.py configs/demo/dino_rats_synthetic.py
#   python tools/export_backbone.py work_dirs/dino_rats_synthetic/iter_400.pth \
#       work_dirs/demo/backbone.pth
# The recipe differs from DINO's ImageNet one where the collapse at this scale has a known
# cause (docs/architecture.md section 6, "DINO at small scale"):
# - photometric augmentation: with DINO's colour jitter, blur and solarisation the student
#   cannot predict the teacher across views of these 64 px crops; the head then maps every
#   image to the same output and the targets go uniform (an early collapse).
#   Views are made grayscale instead (colour is random per object here, so it carries no
#   category) with no jitter, blur or solarisation;
# - teacher temperature 0.04 throughout and momentum 0.99 -> 1: a 400-iteration run cannot
#   wait for a 0.996 EMA (it would still hold ~45 % of its random init at the end);
# - isolated objects (one centred subject on a plain background) and the two global views
#   only: with textured backgrounds the only cue DINO fits in this budget is the background,
#   and local crops make the object-only task too hard (it collapses); this is the setting
#   whose k-NN rises above the random network's (docs/findings.md, "The demo at two-core
#   scale").
_base_ = ['../_base_/dino_runtime.py']

data_root = 'data/synthetic_objects'
max_iters = 400
warmup_iters = 40
crop_size = 64
backbone = dict(img_size=crop_size, patch_size=8, embed_dim=96, depth=4, num_heads=3,
                num_registers=12, attn_mode='rats', class_token=False, drop_path_rate=0.0)

model = dict(backbone=backbone,
             head=dict(out_dim=1024, hidden_dim=256, bottleneck_dim=64),
             freeze_last_layer_iters=warmup_iters // 2)
train_dataloader = dict(
    batch_size=32, num_workers=2, persistent_workers=True,
    dataset=dict(data_root=data_root, ann_file='labels/training.txt',
                 pipeline=dict(global_crop_size=crop_size, local_crop_size=32,
                               local_crops_number=0, local_crops_scale=(0.1, 0.4),
                               grayscale_p=1.0, color_jitter_p=0.0, blur_p=(0.0, 0.0, 0.0),
                               solarize_p=0.0)))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=warmup_iters,
         end=max_iters),
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=False, begin=0, end=max_iters),
]
optim_wrapper = dict(optimizer=dict(lr=5e-4))
auto_scale_lr = dict(enable=False)  # lr above is already for this batch
eval_pipeline = dict(type='EvalTransform', size=crop_size, crop_ratio=1.0, grayscale=True)
custom_hooks = [
    dict(type='DINOScheduleHook', momentum=(0.99, 1.0), teacher_temp=(0.04, 0.04),
         teacher_temp_warmup_iters=0),
    dict(type='ThroughputHook'),
    dict(type='CollapseMonitorHook', patience=100),
    dict(type='PlainCheckpointHook'),
    dict(type='RegisterAttentionMonitorHook', interval=100),  # skipped for the ViT
    # what moves first if DINO goes wrong (docs/parts.md,
    # "From symptom to cause: the collapse diagnostics")
    dict(type='CollapseDiagnosticsHook', interval=100),
    dict(type='KNNMonitorHook', interval=100, k=20, batch_size=128,
         # data_root: the training dataset's
         bank=dict(type='ImageFolderDataset', ann_file='labels/training.txt',
                   pipeline=eval_pipeline),
         query=dict(type='ImageFolderDataset', ann_file='labels/validation.txt',
                    pipeline=eval_pipeline)),
]
default_hooks = dict(logger=dict(interval=20), checkpoint=dict(interval=200))
