"""Data: the synthetic parts dataset (the embedded default, docs/architecture.md section 4).

Pure numpy / OpenCV / pycocotools: nothing here imports the OpenMMLab packages.
"""
from .image_lists import class_subset_lines
from .synthetic import (CATEGORIES, CATEGORY_IDS, CATEGORY_PARTS, IGNORE_INDEX, PART_IDS,
                        PART_TYPES, SYNTHETIC_VERSION, generate_dataset, render_sample)

__all__ = ['PART_TYPES', 'CATEGORIES', 'CATEGORY_PARTS', 'PART_IDS', 'CATEGORY_IDS',
           'IGNORE_INDEX', 'SYNTHETIC_VERSION', 'class_subset_lines', 'render_sample',
           'generate_dataset']
