# Baseline for m2f_rats_coco.py: a plain DINO ViT-S/16 ([CLS], full attention) with the
# upstream head's 100 learned queries (register_queries=None runs the upstream head as is).
#   bash tools/dist_train.sh configs/m2f_vit_coco.py 8
# Backbone weights: configs/dino_vit_vits16_in1k.py (the RATS arm's DINO recipe and length),
# then tools/export_backbone.py to checkpoints/dino_vit_vits16.pth. Not DINO's released
# 800-epoch weights: the comparison holds only between matched pretraining runs.
_base_ = ['./m2f_rats_coco.py']

model = dict(
    backbone=dict(num_registers=0, attn_mode='full', class_token=True,
                  init_cfg=dict(checkpoint='checkpoints/dino_vit_vits16.pth')),
    panoptic_head=dict(num_queries=100, register_queries=None))
