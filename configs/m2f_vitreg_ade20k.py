# Baseline: ViT-S/16 + 4 registers (Darcet et al.; [CLS], full attention) pretrained with the
# same DINO recipe (configs/dino_vitreg_vits16_in1k.py), with the upstream head's 100 learned
# queries. Against m2f_vit_ade20k.py only the backbone's registers (and checkpoint) differ.
#   python tools/export_backbone.py work_dirs/dino_vitreg_vits16_in1k/iter_250200.pth \
#       checkpoints/dino_vitreg_vits16.pth
#   bash tools/dist_train.sh configs/m2f_vitreg_ade20k.py 8
_base_ = ['./m2f_vit_ade20k.py']

model = dict(backbone=dict(num_registers=4,
                           init_cfg=dict(checkpoint='checkpoints/dino_vitreg_vits16.pth')))
