"""The science run's presets: the recipe of each ``--preset`` and what else a preset
chooses (configs, variants, minutes)."""
import os
from dataclasses import replace

from .recipe import RATS_CONFIG, Recipe

__all__ = ['PRESETS', 'PRESET_DEFAULTS', 'demo_recipe', 'smoke_recipe', 'testbed_recipe']


def smoke_recipe():
    """A recipe that runs every stage in seconds on a CPU (tiny data, batch and head)."""
    return replace(Recipe(), batch_size=16, num_train_images=256, local_crops_number=2,
                   head=dict(out_dim=256, hidden_dim=256, bottleneck_dim=64),
                   num_measurements=2, eval_max_images=12, num_eval_objects=60,
                   num_eval_scenes=30)


def demo_recipe():
    """``make demo``'s pretraining recipe (configs/demo/dino_rats_synthetic.py) on this
    pipeline: the demo objects' 1,600 training images, batch 32, lr 5e-4, two 64 px global
    views, momentum 0.99 -> 1, the last layer frozen for 20 of 400 steps; run with
    ``--max-steps 400`` it sees the demo's 12,800 images."""
    return replace(Recipe(), batch_size=32, base_lr=5e-4 * 256 / 32, local_crops_number=0,
                   head=dict(out_dim=1024, hidden_dim=256, bottleneck_dim=64),
                   momentum=(0.99, 1.0), freeze_last_layer_fraction=0.05,
                   num_measurements=4, train_images='objects')


def testbed_recipe():
    """The collapse testbed (docs/findings.md): the GPU run's recipe where two CPU cores allow
    it. Kept: AdamW, warm-up 10 %, cosine schedules, weight decay 0.04 -> 0.4, teacher
    temperature 0.04, grayscale views, clipping, frozen last layer. Changed: batch 128 and
    lr 2e-3 per 256 images (a step of 1e-3), the demo-sized models
    (``configs/science/*_demo_scale.py``), the two 64 px global views only (``--local-crops
    4`` adds DINO's local crops at about 1.5x the time), the held-out objects' 1,600 training
    images, the demo's head (1,024 prototypes), teacher momentum 0.98 -> 0.995 (a teacher
    averaging ~50-200 steps) and a smaller evaluation. ``PRESET_DEFAULTS`` adds 900 steps
    per model (115,200 images).
    """
    return replace(Recipe(), batch_size=128, base_lr=2e-3, local_crops_number=0,
                   train_images='objects', momentum=(0.98, 0.995),
                   head=dict(out_dim=1024, hidden_dim=256, bottleneck_dim=64),
                   num_measurements=6, eval_max_images=300)


PRESETS = {'gpu': Recipe, 'smoke': smoke_recipe, 'demo': demo_recipe, 'testbed': testbed_recipe}
SCIENCE_CONFIGS = os.path.dirname(RATS_CONFIG)
# What a preset changes besides its recipe: the backbone configs, the variants trained and
# the minutes of all of them together and the steps per model (tools/science.py's
# defaults; None: the run's own). The minutes are a cap: a machine too slow for the steps in
# that time plans fewer, shortens the schedules and says so in its log (docs/findings.md
# gives the times measured).
PRESET_DEFAULTS = {
    'testbed': dict(rats_config=os.path.join(SCIENCE_CONFIGS, 'rats_demo_scale.py'),
                    vit_config=os.path.join(SCIENCE_CONFIGS, 'vit_demo_scale.py'),
                    variants=('rats', 'vit'), minutes=32.0, max_steps=900)}
