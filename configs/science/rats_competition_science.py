# RATS of the emergence run (configs/science/rats_science.py) with competition in the compress
# step: each patch's softmax over its head's registers, then each register's weighted mean of
# the patches (RegisterAttention(compress='competition'); docs/findings.md, "Registers that
# merge: the compress step"). tools/science.py trains it as the variant 'rats_competition'.
# Self-contained (no _base_), like its sibling:
#   python tools/analysis/part_eval.py configs/science/rats_competition_science.py \
#       work_dirs/science/backbone_rats_competition.pth --data-root data/synthetic \
#       --split validation --method registers --mode hungarian --out parts_comp.json
backbone = dict(img_size=64, patch_size=8, embed_dim=192, depth=8, num_heads=3,
                num_registers=24, attn_mode='rats', class_token=False, drop_path_rate=0.0,
                compress='competition')
model = dict(backbone=backbone)
