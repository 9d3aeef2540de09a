# Demo baseline of m2f_rats_synthetic_ins.py: the demo's plain ViT (work_dirs/demo/
# backbone_vit.pth) with 16 learned queries; same recipe, data and seed.
#   python tools/train.py configs/demo/m2f_vit_synthetic_ins.py
_base_ = ['./m2f_rats_synthetic_ins.py']

model = dict(
    backbone=dict(num_registers=0, attn_mode='full', class_token=True,
                  init_cfg=dict(checkpoint='work_dirs/demo/backbone_vit.pth')),
    panoptic_head=dict(num_queries=16, register_queries=None))
