# Ablation between m2f_rats_coco.py and m2f_vit_coco.py: the RATS-S/16 backbone with the
# upstream head's 100 learned queries. Against m2f_rats_coco.py only the query source
# differs; against m2f_vit_coco.py only the backbone (and its checkpoint).
#   bash tools/dist_train.sh configs/m2f_rats_learnedq_coco.py 8
_base_ = ['./m2f_rats_coco.py']

model = dict(panoptic_head=dict(num_queries=100, register_queries=None))
