# A row of the collapse testbed's search (results/testbed/README.md, folder C): the demo's
# RATS (width 96, 4 blocks, 3 heads, 12 registers,
# patch 8) on 32 px crops, the size of configs/science/vit_32px.py.
backbone = dict(img_size=32, patch_size=8, embed_dim=96, depth=4, num_heads=3,
                num_registers=12, attn_mode='rats', class_token=False, drop_path_rate=0.0)
model = dict(backbone=backbone)
