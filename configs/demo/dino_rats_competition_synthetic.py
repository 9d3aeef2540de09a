# Demo RATS with competition in the compress step (RegisterAttention(compress='competition')):
# each patch shares itself among its head's registers (softmax over the registers), and each
# register reads the share-weighted mean of the patches. Everything else is the demo recipe of
# configs/demo/dino_rats_synthetic.py; docs/findings.md ("Registers that merge: the compress
# step") compares the two.
#   python tools/pretrain.py configs/demo/dino_rats_competition_synthetic.py
#   python tools/export_backbone.py \
#       work_dirs/dino_rats_competition_synthetic/iter_400.pth work_dirs/demo/backbone_comp.pth
#   python tools/analysis/part_eval.py configs/demo/dino_rats_competition_synthetic.py \
#       work_dirs/demo/backbone_comp.pth --data-root data/synthetic --split validation \
#       --method registers
_base_ = ['./dino_rats_synthetic.py']

model = dict(backbone=dict(compress='competition'))
