# Baseline of m2f_rats_vitb_ade20k.py: a plain DINO ViT-B/16 ([CLS], full attention) with the
# upstream head's 100 learned queries; same neck, schedule, drop-path 0.3 and data.
#   python tools/pretrain.py configs/dino_rats_vitb16_in1k.py \
#       --cfg-options model.backbone.num_registers=0 model.backbone.attn_mode=full \
#       model.backbone.class_token=True   (the ViT-B run of the same DINO recipe)
#   bash tools/dist_train.sh configs/m2f_vit_vitb_ade20k.py 8
_base_ = ['./m2f_rats_vitb_ade20k.py']

model = dict(
    backbone=dict(num_registers=0, attn_mode='full', class_token=True,
                  init_cfg=dict(checkpoint='checkpoints/dino_vit_vitb16.pth')),
    decode_head=dict(num_queries=100, register_queries=None))
