# RATS of the emergence run (configs/science/rats_science.py) with both register-attention
# options: competition in the compress step and scaled cosine logits in the three steps
# (docs/findings.md, "Registers that break their symmetry: cosine logits", compares the cells
# under the attention probe). tools/science.py trains it as the variant
# 'rats_competition_cosine'. Self-contained (no _base_), like its siblings:
#   python tools/analysis/part_eval.py configs/science/rats_competition_cosine_science.py \
#       work_dirs/science/backbone_rats_competition_cosine.pth --data-root data/synthetic \
#       --split validation --method registers --mode hungarian --out parts_comp_cos.json
backbone = dict(img_size=64, patch_size=8, embed_dim=192, depth=8, num_heads=3,
                num_registers=24, attn_mode='rats', class_token=False, drop_path_rate=0.0,
                compress='competition', logits='cosine')
model = dict(backbone=backbone)
