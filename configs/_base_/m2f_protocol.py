# What every downstream comparison arm shares (configs/m2f_*.py), declared once:
# - one seed for every arm (other seeds: --cfg-options randomness.seed=1; the protocol of
#   docs/evaluation.md, "Comparing Mask2Former arms", runs 3 per arm and compares them with
#   tools/analysis/compare_runs.py);
# - the schedules are written for 8 GPUs x 2 images: on another total batch the launcher
#   rescales every iteration count (logged), so the epochs stay the same;
# - a linear warm-up of 1,500 iterations (ViT-Adapter's plain-ViT fine-tuning) ahead of each
#   schedule: the register-query projection sends gradients straight into the registers
#   from the first step;
# - no checkpoint is selected on the validation set, which is also the reported set
#   (save_best=None in each config's checkpoint hook: upstream's bases hold default_hooks).
randomness = dict(seed=0)
schedule_batch = 16
warmup_iters = 1500
