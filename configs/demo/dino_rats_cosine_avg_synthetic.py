# Demo RATS with scaled cosine logits whose DINO head reads the patch mean (the read-out
# 'avg': what the patches end with, every message between them still carried by the
# registers) instead of the register mean. The backbone's global_pool is the same read-out
# with its final norm on every token (fc_norm=False), so model(x) and the k-NN monitor read
# what the head reads. tools/science.py trains it as the variant 'rats_cosine_avg';
# docs/findings.md ("Local crops: RATS read-outs against the ViT") compares it with the
# paper's RATS and the ViT.
#   python tools/pretrain.py configs/demo/dino_rats_cosine_avg_synthetic.py
_base_ = ['./dino_rats_cosine_synthetic.py']

model = dict(embedding='avg', backbone=dict(global_pool='avg', fc_norm=False))
