# Demo RATS with scaled cosine logits whose DINO head reads every register (the read-out
# 'registers': the final registers concatenated, N x D) instead of their mean; the backbone's
# global_pool is the same read-out, so model(x) and the k-NN monitor read what the head reads.
# tools/science.py trains it as the variant 'rats_cosine_registers'; docs/findings.md ("Local
# crops: RATS read-outs against the ViT") compares it with the paper's RATS and the ViT.
#   python tools/pretrain.py configs/demo/dino_rats_cosine_registers_synthetic.py
_base_ = ['./dino_rats_cosine_synthetic.py']

model = dict(embedding='registers', backbone=dict(global_pool='registers'))
