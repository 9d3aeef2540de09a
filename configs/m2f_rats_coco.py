# Mask2Former instance segmentation on COCO with RATS-S/16 register tokens as queries
# (LSJ 1024, 50 epochs, 8 GPUs x 2 images, CocoMetric segm):
#   bash tools/dist_train.sh configs/m2f_rats_coco.py 8
# Backbone weights: configs/dino_rats_vits16_in1k.py, then tools/export_backbone.py to
# checkpoints/dino_rats_vits16.pth.
_base_ = ['mmdet::mask2former/mask2former_r50_8xb2-lsj-50e_coco.py',
          './_base_/m2f_protocol.py']
custom_imports = dict(imports=['rats_mm.mmdet'], allow_failed_imports=False)

pretrained = 'checkpoints/dino_rats_vits16.pth'
embed_dim, depth, num_heads = 384, 12, 6
num_registers = 48          # 8 per head
num_extra_queries = 52      # 100 queries in all, as the upstream head
feat_channels = 256

model = dict(
    backbone=dict(
        _delete_=True, type='RatsViT', img_size=1024, patch_size=16, embed_dim=embed_dim,
        depth=depth, num_heads=num_heads, num_registers=num_registers, attn_mode='rats',
        class_token=False, drop_path_rate=0.1, out_indices=(3, 5, 7, 11),
        compile=False,  # True: torch.compile the backbone (on a GPU)
        with_cp=True,  # activation checkpointing at 1024 px (benchmarks/grad_checkpointing.py)
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(type='SimpleFeaturePyramid', in_channels=embed_dim, out_channels=feat_channels,
              scale_factors=(4.0, 2.0, 1.0, 0.5), pass_registers=True),
    panoptic_head=dict(
        type='RegisterQueryMask2FormerHead',
        in_channels=[feat_channels] * 4,
        num_queries=num_registers + num_extra_queries,
        register_queries=dict(in_channels=embed_dim, num_registers=num_registers,
                              num_extra_queries=num_extra_queries)))
train_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
val_dataloader = dict(dataset=dict(type='CheckedCocoDataset'))
test_dataloader = val_dataloader

optim_wrapper = dict(
    # bf16 autocast on GPUs, no loss scaler (float32 on a CPU; --amp fp16 for fp16)
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, num_layers=depth, layer_decay_rate=0.9))
# lr 1e-4, weight decay 0.05 and the steps at 327,778 / 355,092 are upstream Mask2Former's;
# layer decay 0.9 as in m2f_rats_ade20k.py; the warm-up (configs/_base_/m2f_protocol.py)
# comes first.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end={{_base_.warmup_iters}}),
    dict(type='MultiStepLR', begin=0, end=368750, by_epoch=False, milestones=[327778, 355092],
         gamma=0.1)]
default_hooks = dict(checkpoint=dict(save_best=None))  # nothing chosen on the val set
