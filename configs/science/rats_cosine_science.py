# RATS of the emergence run (configs/science/rats_science.py) with scaled cosine logits in the
# three steps of register attention: exp(min(t, log 100)) * cos(q, k), t learnable per step and
# head, initialised to log 10 (RegisterAttention(logits='cosine'); docs/findings.md, "Registers
# that break their symmetry: cosine logits"). tools/science.py trains it as the variant
# 'rats_cosine', and its read-outs as 'rats_cosine_<embedding>' (e.g. 'rats_cosine_avg', the
# recommended RATS): their backbones record the read-out, which the analysis tools rebuild.
# Self-contained (no _base_), like its siblings:
#   python tools/analysis/part_eval.py configs/science/rats_cosine_science.py \
#       work_dirs/science/backbone_rats_cosine.pth --data-root data/synthetic \
#       --split validation --method registers --mode hungarian --out parts_cosine.json
backbone = dict(img_size=64, patch_size=8, embed_dim=192, depth=8, num_heads=3,
                num_registers=24, attn_mode='rats', class_token=False, drop_path_rate=0.0,
                logits='cosine')
model = dict(backbone=backbone)
