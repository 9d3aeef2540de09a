# Ablation between m2f_rats_ade20k.py and m2f_vit_ade20k.py: the RATS-S/16 backbone with the
# upstream head's 100 learned queries (register_queries=None runs the upstream head as is).
# Against m2f_rats_ade20k.py only the query source differs; against m2f_vit_ade20k.py only the
# backbone (and its checkpoint).
#   bash tools/dist_train.sh configs/m2f_rats_learnedq_ade20k.py 8
_base_ = ['./m2f_rats_ade20k.py']

model = dict(decode_head=dict(num_queries=100, register_queries=None))
