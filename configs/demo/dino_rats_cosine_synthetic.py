# Demo RATS with scaled cosine logits in register attention (RegisterAttention(logits='cosine')):
# compress, communicate and broadcast each score exp(min(t, log 100)) * cos(q, k), with t a
# learnable temperature per step and head initialised to log 10 (Swin V2), where the paper's
# step scores q . k / sqrt(d). Everything else is the demo recipe of
# configs/demo/dino_rats_synthetic.py; docs/findings.md ("Registers that break their symmetry:
# cosine logits") compares the two.
#   python tools/pretrain.py configs/demo/dino_rats_cosine_synthetic.py
#   python tools/export_backbone.py \
#       work_dirs/dino_rats_cosine_synthetic/iter_400.pth work_dirs/demo/backbone_cosine.pth
#   python tools/analysis/attention_probe.py configs/demo/dino_rats_cosine_synthetic.py \
#       --data-root data/synthetic_objects --iters 800 --seed 0 --out probe_cosine.json
_base_ = ['./dino_rats_synthetic.py']

model = dict(backbone=dict(logits='cosine'))
