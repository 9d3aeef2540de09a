"""Analysis core: part metrics, register / k-means segmentation, similarity maps, part
dataset readers, the register dictionary and token-norm statistics.

Pure PyTorch / numpy / scipy / scikit-learn / matplotlib (Agg) / pycocotools; no OpenMMLab.
"""
from .dictionary import build_register_dictionary, render_dictionary_heatmap
from .metrics import clustering_scores, confusion_matrix, part_miou
from .part_eval import evaluate_parts, segment_parts
from .readers import IMAGE_EXTENSIONS, PartFolder, read_partimagenet, read_pascal_part
from .register_stats import register_similarity, registers_in_use
from .segment import kmeans, kmeans_assignment, register_assignment, upsample_labels
from .similarity import (register_palette, register_patch_similarity, render_part_overlay,
                         render_similarity_grid, similarity_maps)
from .training_curves import read_scalars, render_training_curves
from .token_norms import patch_token_norms, render_norm_histograms, token_norm_stats

__all__ = [
    'IMAGE_EXTENSIONS', 'evaluate_parts', 'segment_parts', 'PartFolder', 'build_register_dictionary', 'clustering_scores',
    'confusion_matrix', 'kmeans', 'kmeans_assignment', 'part_miou', 'patch_token_norms',
    'read_partimagenet', 'read_pascal_part', 'read_scalars', 'register_assignment',
    'register_palette', 'register_patch_similarity', 'register_similarity', 'registers_in_use',
    'render_dictionary_heatmap', 'render_norm_histograms', 'render_part_overlay',
    'render_similarity_grid', 'render_training_curves', 'similarity_maps', 'token_norm_stats',
    'upsample_labels']
