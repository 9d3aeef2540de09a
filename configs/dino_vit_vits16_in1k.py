# Baseline: plain ViT-S/16 ([CLS], full attention, no registers) under the same DINO recipe.
#   bash tools/dist_pretrain.sh configs/dino_vit_vits16_in1k.py 8
_base_ = ['./dino_rats_vits16_in1k.py']

model = dict(backbone=dict(num_registers=0, attn_mode='full', class_token=True))
