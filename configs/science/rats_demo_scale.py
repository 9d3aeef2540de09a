# The demo's RATS (configs/demo/dino_rats_synthetic.py: width 96, 4 blocks, 3 heads, 12
# registers, patch 8, 64 px) for tools/science.py, which reads configs without mmengine:
# `--preset demo` with this pair trains the demo's recipe on the on-device pipeline
# (docs/architecture.md section 6, "DINO at small scale").
backbone = dict(img_size=64, patch_size=8, embed_dim=96, depth=4, num_heads=3,
                num_registers=12, attn_mode='rats', class_token=False, drop_path_rate=0.0)
model = dict(backbone=backbone)
