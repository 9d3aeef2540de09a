# Baseline: ViT-S/16 + 4 registers pretrained with the same DINO recipe
# (configs/dino_vitreg_vits16_in1k.py), upstream head with 100 learned queries. Against
# m2f_vit_coco.py only the backbone's registers (and checkpoint) differ.
#   bash tools/dist_train.sh configs/m2f_vitreg_coco.py 8
_base_ = ['./m2f_vit_coco.py']

model = dict(backbone=dict(num_registers=4,
                           init_cfg=dict(checkpoint='checkpoints/dino_vitreg_vits16.pth')))
