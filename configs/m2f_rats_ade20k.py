# Mask2Former with RATS-S/16 register tokens as queries on ADE20K (512x512, 160k iterations,
# 8 GPUs x 2 images):  bash tools/dist_train.sh configs/m2f_rats_ade20k.py 8
# Backbone weights: pretrain with configs/dino_rats_vits16_in1k.py, then
#   python tools/export_backbone.py work_dirs/dino_rats_vits16_in1k/iter_250200.pth \
#       checkpoints/dino_rats_vits16.pth
_base_ = ['mmseg::mask2former/mask2former_r50_8xb2-160k_ade20k-512x512.py',
          './_base_/m2f_protocol.py']
custom_imports = dict(imports=['mmdet.models', 'rats_mm.mmseg'], allow_failed_imports=False)

pretrained = 'checkpoints/dino_rats_vits16.pth'
embed_dim, depth, num_heads = 384, 12, 6
num_registers = 48          # 8 per head
num_extra_queries = 52      # 100 queries in all, as the upstream head
feat_channels = 256

model = dict(
    backbone=dict(
        _delete_=True, type='RatsViT', img_size=512, patch_size=16, embed_dim=embed_dim,
        depth=depth, num_heads=num_heads, num_registers=num_registers, attn_mode='rats',
        class_token=False, drop_path_rate=0.1, out_indices=(3, 5, 7, 11),
        compile=False,  # True: torch.compile the backbone (on a GPU)
        init_cfg=dict(type='Pretrained', checkpoint=pretrained)),
    neck=dict(type='SimpleFeaturePyramid', in_channels=embed_dim, out_channels=feat_channels,
              scale_factors=(4.0, 2.0, 1.0, 0.5), pass_registers=True),
    # sliding 512 windows (stride 341, as ViT-Adapter evaluates plain ViTs): the registers
    # summarise windows of the size they trained on; mode='whole' is still selectable
    test_cfg=dict(mode='slide', crop_size=(512, 512), stride=(341, 341)),
    decode_head=dict(
        type='RegisterQueryMask2FormerHead',
        in_channels=[feat_channels] * 4,
        num_queries=num_registers + num_extra_queries,
        register_queries=dict(in_channels=embed_dim, num_registers=num_registers,
                              num_extra_queries=num_extra_queries)))
train_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
val_dataloader = dict(dataset=dict(type='CheckedADE20KDataset'))
test_dataloader = val_dataloader

# layer-wise lr decay over the backbone; no weight decay on registers, positions, queries
optim_wrapper = dict(
    # bf16 autocast on GPUs, no loss scaler (float32 on a CPU; --amp fp16 for fp16)
    type='AmpOptimWrapper', dtype='bfloat16', loss_scale=dict(enabled=False),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(_delete_=True, num_layers=depth, layer_decay_rate=0.9))
# lr 1e-4 and weight decay 0.05 are upstream Mask2Former's; layer decay 0.9 over the 12
# blocks (BEiT / ViT-Adapter's rate for ViT-S/B) scales the backbone from 0.9^12 = 0.28x
# (patch embedding) to 0.9x (last block) of it; the warm-up (configs/_base_/m2f_protocol.py)
# comes first.
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0,
         end={{_base_.warmup_iters}}),
    dict(type='PolyLR', eta_min=0, power=0.9, begin={{_base_.warmup_iters}}, end=160000, by_epoch=False)]
default_hooks = dict(checkpoint=dict(save_best=None))  # nothing chosen on the val set
