# The ADE20K recipe of m2f_rats_ade20k.py with RATS-B/16 (96 registers, 8 per head); its
# baseline is m2f_vit_vitb_ade20k.py.
#   bash tools/dist_train.sh configs/m2f_rats_vitb_ade20k.py 8
# Backbone weights: configs/dino_rats_vitb16_in1k.py, then tools/export_backbone.py.
_base_ = ['./m2f_rats_ade20k.py']

embed_dim, num_heads, num_registers, num_extra_queries = 768, 12, 96, 4

model = dict(
    # drop-path 0.3: ViT-Adapter-B's rate for ViT-B (ViT-S keeps 0.1)
    backbone=dict(embed_dim=embed_dim, num_heads=num_heads, num_registers=num_registers,
                  drop_path_rate=0.3,
                  init_cfg=dict(checkpoint='checkpoints/dino_rats_vitb16.pth')),
    neck=dict(in_channels=embed_dim),
    decode_head=dict(num_queries=num_registers + num_extra_queries,
                     register_queries=dict(in_channels=embed_dim, num_registers=num_registers,
                                           num_extra_queries=num_extra_queries)))
