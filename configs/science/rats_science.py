# RATS of the emergence run (tools/science.py): width 192, 8 blocks, 3 heads of 64 dims,
# 8 registers per head (24).
# Patch 8 on 64 px global crops (8 x 8 patches), 32 px local crops (4 x 4).
# Self-contained (no _base_): tools/science.py reads it without mmengine; the analysis tools
# read it as any project config:
#   python tools/analysis/part_eval.py configs/science/rats_science.py \
#       work_dirs/science/backbone_rats.pth --data-root data/synthetic --split validation \
#       --method registers --mode hungarian --out parts_rats.json
backbone = dict(img_size=64, patch_size=8, embed_dim=192, depth=8, num_heads=3,
                num_registers=24, attn_mode='rats', class_token=False, drop_path_rate=0.0)
model = dict(backbone=backbone)
