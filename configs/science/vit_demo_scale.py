# The demo's plain ViT (configs/demo/dino_vit_synthetic.py) for tools/science.py; see
# rats_demo_scale.py.
backbone = dict(img_size=64, patch_size=8, embed_dim=96, depth=4, num_heads=3,
                num_registers=0, attn_mode='full', class_token=True, drop_path_rate=0.0)
model = dict(backbone=backbone)
