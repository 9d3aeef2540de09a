# The DINO 100-epoch recipe of dino_rats_vits16_in1k.py for RATS-B/16 (96 registers, 8 per
# head); drop_path 0.1, same crops and schedules.
#   bash tools/dist_pretrain.sh configs/dino_rats_vitb16_in1k.py 8
_base_ = ['./dino_rats_vits16_in1k.py']

model = dict(backbone=dict(embed_dim=768, num_heads=12, num_registers=96))
