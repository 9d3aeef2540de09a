"""The emergence run (``tools/science.py``): RATS and a plain ViT trained with DINO on one
device for a fixed time, on data rendered once and kept on the device, measured as they
train and evaluated for parts at the end.

Pure core like ``layers models ssl data analysis``: PyTorch, torchvision, timm, numpy, scipy,
scikit-learn, matplotlib; no OpenMMLab, so it runs on a GPU machine that has none.
"""
from .recipe import Recipe, backbone_config, plan_steps, step_settings, train_flops_per_image
from .run import SUMMARY_KEYS, run_science, smoke_recipe

__all__ = ['SUMMARY_KEYS', 'Recipe', 'backbone_config', 'plan_steps', 'run_science',
           'smoke_recipe', 'step_settings', 'train_flops_per_image']
