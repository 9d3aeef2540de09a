# A row of the collapse testbed's search (results/testbed/README.md, folder C): the demo's
# ViT (width 96, 4 blocks, 3 heads, patch 8) on 32 px
# crops, a 4 x 4 patch grid, small enough for two CPU cores.
backbone = dict(img_size=32, patch_size=8, embed_dim=96, depth=4, num_heads=3,
                num_registers=0, attn_mode='full', class_token=True, drop_path_rate=0.0)
model = dict(backbone=backbone)
