# DINO pretraining runtime shared by every pretraining config (mmengine Runner, root scope).
# Children set model.backbone and the dataset roots, and declare the iteration-dependent
# entries (train_cfg, param_scheduler, custom_hooks) from their own max_iters / warmup_iters.
custom_imports = dict(imports=['rats_mm.pretrain'], allow_failed_imports=False)

model = dict(
    type='DINOPretrainer',
    backbone=dict(),
    head=dict(out_dim=65536, hidden_dim=2048, bottleneck_dim=256, nlayers=3,
              norm_last_layer=True),
    loss=dict(student_temp=0.1, center_momentum=0.9),
    freeze_last_layer_iters=0,
    compile_backbone=False,  # True: torch.compile both backbones (--cfg-options on a GPU)
    # uint8 views copied from pinned memory without blocking, normalised on the device
    data_preprocessor=dict(type='MultiCropDataPreprocessor', mean=(0.485, 0.456, 0.406),
                           std=(0.229, 0.224, 0.225), non_blocking=True))
# broadcast_buffers off: the only buffer, the DINO centre, is kept equal on every rank by its
# own all-reduce; DDP would otherwise copy its 65,536 floats from rank 0 at every forward
model_wrapper_cfg = dict(type='DINODistributedDataParallel', broadcast_buffers=False)

train_dataloader = dict(
    batch_size=64,  # per process
    num_workers=8,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='InfiniteSampler', shuffle=True),
    collate_fn=dict(type='multicrop_collate'),
    dataset=dict(
        type='ImageFolderDataset',
        data_root='data/imagenet/train',
        pipeline=dict(type='MultiCropAugmentation', global_crops_scale=(0.4, 1.0),
                      local_crops_scale=(0.05, 0.4), local_crops_number=8,
                      global_crop_size=224, local_crop_size=96, output='uint8')))

# AdamW, lr = 5e-4 x total batch / 256 (auto_scale_lr), no decay on biases, norms, tokens and
# the cosine logits' temperatures (RegisterAttention.logit_scale, logits='cosine').
# custom_keys spells out rats_mm.ssl.distill.NO_DECAY_NAMES (a config cannot import it);
# tests/pretrain/test_amp_wrapper.py keeps the two equal.
optim_wrapper = dict(
    type='DINOOptimWrapper',
    constructor='StudentOptimWrapperConstructor',  # the teacher is an EMA, not optimised
    optimizer=dict(type='AdamW', lr=5e-4, weight_decay=0.04, betas=(0.9, 0.999)),
    clip_grad=dict(type='per_parameter', max_norm=3.0),  # DINO: each parameter on its own
    paramwise_cfg=dict(norm_decay_mult=0.0, bias_decay_mult=0.0, custom_keys={
        'registers': dict(decay_mult=0.0), 'pos_embed': dict(decay_mult=0.0),
        'cls_token': dict(decay_mult=0.0), 'logit_scale': dict(decay_mult=0.0)}))
auto_scale_lr = dict(enable=True, base_batch_size=256)
default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=5000, max_keep_ckpts=3))
# schedule values and the running count of unreadable images: latest value, not a mean
log_processor = dict(by_epoch=False, window_size=50, custom_cfg=[
    dict(data_src=key, method_name='mean', window_size=1)
    for key in ('skipped_images', 'teacher_momentum', 'teacher_temp')])
visualizer = dict(type='Visualizer', vis_backends=[dict(type='LocalVisBackend')])
env_cfg = dict(cudnn_benchmark=False, mp_cfg=dict(mp_start_method='fork'),
               dist_cfg=dict(backend='nccl'))
randomness = dict(seed=0)
log_level = 'INFO'
load_from = None
resume = False
