# DINO's vanilla 100-epoch ViT-S/16 recipe (main_dino.py defaults) for RATS-S/16 (48 registers,
# 8 per head) on ImageNet-1k: 8 GPUs x 64 images, 2 x 224 + 8 x 96 crops, out_dim 65536 with a
# normalised last layer, lr 5e-4 x batch/256 with 10 warm-up epochs then cosine to 1e-6,
# wd 0.04 -> 0.4, teacher momentum 0.996 -> 1, teacher temperature 0.04 constant, drop-path
# 0.1 (student only: the teacher runs in eval mode), per-parameter gradient clip 3.0, last
# layer frozen for 1 epoch; bf16 autocast. The 300-epoch recipe is dino_rats_vits16_in1k_300e.py.
# On another number of GPUs the iteration counts are rescaled to keep the epochs (logged).
#   bash tools/dist_pretrain.sh configs/dino_rats_vits16_in1k.py 8
#   python tools/export_backbone.py work_dirs/dino_rats_vits16_in1k/iter_250200.pth \
#       work_dirs/dino_rats_vits16_in1k/backbone.pth
# The k-NN monitor's bank is a labelled subset of the train folder, listed in
# data/imagenet/knn_bank.txt (lines "train/<wnid>/<file>.JPEG <class index>"); e.g. 10 images
# per class: python tools/make_knn_bank.py data/imagenet/train data/imagenet/knn_bank.txt 10
_base_ = ['./_base_/dino_runtime.py']

num_images = 1281167
num_gpus = 8
batch_size = 64
epochs = 100
# the iteration counts below are for this total batch; on another number of GPUs the launcher
# rescales every one of them so the epochs stay the same (rats_mm.runtime.precision)
schedule_batch = num_gpus * batch_size
iters_per_epoch = num_images // schedule_batch
max_iters = epochs * iters_per_epoch
warmup_iters = 10 * iters_per_epoch
teacher_temp = (0.04, 0.04)  # (start, end) of the linear warm-up
teacher_temp_warmup_iters = 0

# The paper's register attention (dot-product logits), its DINO head reading the register
# mean. The RATS that learns as much as the ViT with local crops on the two-core testbed
# (docs/findings.md, "Local crops: RATS read-outs against the ViT") has cosine logits and its
# head reading the patch mean; one switch, here or on the command line:
#   --cfg-options model.backbone.logits=cosine model.backbone.global_pool=avg \
#                 model.backbone.fc_norm=False model.embedding=avg
model = dict(
    backbone=dict(img_size=224, patch_size=16, embed_dim=384, depth=12, num_heads=6,
                  num_registers=48, attn_mode='rats', class_token=False, drop_path_rate=0.1),
    freeze_last_layer_iters=iters_per_epoch)
# bf16 autocast on GPUs (no loss scaler: bf16 has float32's range); --amp fp16 for DINO's fp16
# with a GradScaler; float32 on a CPU. Head's last layer, loss, centre and teacher softmax
# stay float32.
optim_wrapper = dict(type='DINOAmpOptimWrapper', dtype='bfloat16',
                     loss_scale=dict(enabled=False))
train_dataloader = dict(batch_size=batch_size, num_workers=10,
                        dataset=dict(data_root='data/imagenet/train'))
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=warmup_iters),
    dict(type='CosineAnnealingLR', eta_min=1e-6, by_epoch=False, begin=warmup_iters,
         end=max_iters),
    # weight decay 0.04 -> 0.4 (cosine); groups without decay stay at 0
    dict(type='CosineAnnealingParamScheduler', param_name='weight_decay', eta_min_ratio=10.0,
         by_epoch=False, begin=0, end=max_iters),
]
eval_pipeline = dict(type='EvalTransform', size=224)
custom_hooks = [
    dict(type='DINOScheduleHook', momentum=(0.996, 1.0), teacher_temp=teacher_temp,
         teacher_temp_warmup_iters=teacher_temp_warmup_iters),
    dict(type='ThroughputHook'),
    dict(type='CollapseMonitorHook', patience=1000),
    dict(type='PlainCheckpointHook'),
    # are the registers reading different things yet? (1.0 = uniform; skipped for ViTs)
    dict(type='RegisterAttentionMonitorHook', interval=iters_per_epoch),
    # what moves first if DINO goes wrong (docs/parts.md,
    # "From symptom to cause: the collapse diagnostics")
    dict(type='CollapseDiagnosticsHook', interval=iters_per_epoch),
    # k-NN of teacher and student: a labelled train subset as bank, ImageNet val as queries
    # (class sub-folders); every rank embeds its share with loader workers
    dict(type='KNNMonitorHook', interval=10 * iters_per_epoch, k=20, batch_size=256,
         num_workers=8,
         bank=dict(type='ImageFolderDataset', data_root='data/imagenet',
                   ann_file='knn_bank.txt', pipeline=eval_pipeline),
         query=dict(type='ImageFolderDataset', data_root='data/imagenet/val',
                    pipeline=eval_pipeline)),
]
default_hooks = dict(checkpoint=dict(interval=5 * iters_per_epoch))
