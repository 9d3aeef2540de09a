# Baseline: ViT-S/16 + 4 registers (Darcet et al.: [CLS] + registers, full attention) under
# the same DINO recipe.
#   bash tools/dist_pretrain.sh configs/dino_vitreg_vits16_in1k.py 8
_base_ = ['./dino_rats_vits16_in1k.py']

model = dict(backbone=dict(num_registers=4, attn_mode='full', class_token=True))
