# Plain ViT of the emergence run (tools/science.py): the RATS of rats_science.py with
# self-attention over all tokens and a [CLS] token instead of registers; same width, depth,
# heads, patch, recipe, data and seed. Its patch tokens, clustered with k-means (K = 24, the
# RATS register count), are the part baseline:
#   python tools/analysis/part_eval.py configs/science/vit_science.py \
#       work_dirs/science/backbone_vit.pth --data-root data/synthetic --split validation \
#       --method kmeans --num-clusters 24 --mode hungarian --out parts_vit.json
backbone = dict(img_size=64, patch_size=8, embed_dim=192, depth=8, num_heads=3,
                num_registers=0, attn_mode='full', class_token=True, drop_path_rate=0.0)
model = dict(backbone=backbone)
