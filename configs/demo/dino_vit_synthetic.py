# Demo baseline: a plain ViT ([CLS] token, full self-attention, no registers) pretrained with
# exactly the demo RATS recipe (configs/demo/dino_rats_synthetic.py: same data, crops, width,
# depth, heads, schedule and budget); only the token mixer and the image token differ. Its
# patch features, clustered with k-means, are the part-discovery baseline of `make demo`:
#   python tools/pretrain.py configs/demo/dino_vit_synthetic.py
#   python tools/export_backbone.py work_dirs/dino_vit_synthetic/iter_400.pth \
#       work_dirs/demo/backbone_vit.pth
#   python tools/analysis/part_eval.py configs/demo/dino_vit_synthetic.py \
#       work_dirs/demo/backbone_vit.pth --data-root data/synthetic --split validation \
#       --method kmeans --num-clusters 12
_base_ = ['./dino_rats_synthetic.py']

backbone = dict(num_registers=0, attn_mode='full', class_token=True)
model = dict(backbone=backbone)
