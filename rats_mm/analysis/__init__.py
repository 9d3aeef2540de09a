"""Analysis core: part metrics, register / k-means segmentation, similarity maps, part
dataset readers, the register dictionary, token-norm and register statistics, training
curves, and the evaluations the tools and the demo run (``evaluate_parts``,
``write_similarity_maps``, ``register_dictionary_report``, ``dataset_token_norms``,
``knn_probe`` / ``linear_probe`` on ``extract_features``, ``discover_objects``,
``register_usage``, ``register_attention_profile``, ``train_attention_probe``).

Pure PyTorch / numpy / scipy / scikit-learn / matplotlib (Agg) / pycocotools; no OpenMMLab:
the functions take built models (``rats_mm.runtime.backbones`` builds them from configs).
"""
from .attention_probe import train_attention_probe
from .discovery import discover_objects
from .dictionary import build_register_dictionary, render_dictionary_heatmap
from .dictionary_report import register_dictionary_report
from .features import FrozenEmbedding, extract_features
from .maps import write_similarity_maps
from .metrics import clustering_scores, confusion_matrix, part_miou
from .part_eval import evaluate_parts, segment_parts
from .probes import knn_probe, linear_probe
from .readers import IMAGE_EXTENSIONS, PartFolder, read_partimagenet, read_pascal_part
from .register_attention_stats import register_attention_profile, step_statistics
from .register_stats import register_similarity, registers_in_use
from .register_usage import register_usage
from .segment import kmeans, kmeans_assignment, register_assignment, upsample_labels
from .similarity import (register_palette, register_patch_similarity, render_part_overlay,
                         render_similarity_grid, similarity_maps)
from .training_curves import read_scalars, render_training_curves
from .token_norms import (dataset_token_norms, patch_token_norms, render_norm_histograms,
                          render_outlier_fractions, token_norm_stats)

__all__ = [
    'FrozenEmbedding', 'discover_objects', 'extract_features', 'knn_probe', 'linear_probe',
    'register_usage', 'register_attention_profile', 'train_attention_probe', 'step_statistics', 'IMAGE_EXTENSIONS', 'PartFolder', 'build_register_dictionary', 'clustering_scores',
    'confusion_matrix', 'dataset_token_norms', 'evaluate_parts', 'kmeans', 'kmeans_assignment',
    'part_miou', 'patch_token_norms', 'read_partimagenet', 'read_pascal_part', 'read_scalars',
    'register_assignment', 'register_dictionary_report', 'register_palette',
    'register_patch_similarity', 'register_similarity', 'registers_in_use',
    'render_dictionary_heatmap', 'render_norm_histograms', 'render_outlier_fractions',
    'render_part_overlay', 'render_similarity_grid', 'render_training_curves', 'segment_parts',
    'similarity_maps', 'token_norm_stats', 'upsample_labels', 'write_similarity_maps']
