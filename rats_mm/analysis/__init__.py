"""Analysis core, grouped by the question each part answers:

- ``parts``: which parts do the registers find? (part metrics, register / k-means
  segmentation, similarity maps, part-dataset readers, ``evaluate_parts``, the register
  dictionary);
- ``registers``: how are the registers used, do they read different things? (register
  statistics and usage, ``register_attention_profile``, token norms, the attention probe);
- ``probes``: how good are the frozen features? (``extract_features``, k-NN / linear);
- ``discovery``: where is the object? (LOST / registers boxes, CorLoc);
- ``io`` (images and part items prepared for a model, CLI helpers), ``training_curves`` and
  ``runs`` (downstream runs over seeds: mean ± std per arm).

Pure PyTorch / numpy / scipy / scikit-learn / matplotlib (Agg) / pycocotools; no OpenMMLab:
the functions take built models (``rats_mm.runtime.backbones`` builds them from configs).
Every public name is importable from ``rats_mm.analysis`` itself.
"""
from ..data.images import IMAGE_EXTENSIONS
from ..data.palette import register_palette
from .discovery import discover_objects
from .parts import (PartFolder, build_register_dictionary, clustering_scores, confusion_matrix,
                    evaluate_parts, kmeans, kmeans_assignment, part_miou, read_partimagenet,
                    read_pascal_part, register_assignment, register_dictionary_report,
                    register_patch_similarity, render_dictionary_heatmap, render_part_overlay,
                    render_similarity_grid, segment_parts, similarity_maps, single_segment_miou,
                    upsample_labels, write_similarity_maps)
from .probes import FrozenEmbedding, extract_features, knn_probe, linear_probe
from .registers import (dataset_token_norms, patch_token_norms, register_attention_profile,
                        register_similarity, register_usage, registers_in_use,
                        render_norm_histograms, render_outlier_fractions, step_statistics,
                        token_norm_stats, train_attention_probe)
from .runs import compare_runs
from .training_curves import read_scalars, render_training_curves

__all__ = [
    'FrozenEmbedding', 'IMAGE_EXTENSIONS', 'PartFolder', 'build_register_dictionary',
    'clustering_scores', 'compare_runs', 'confusion_matrix', 'dataset_token_norms',
    'discover_objects',
    'evaluate_parts', 'extract_features', 'kmeans', 'kmeans_assignment', 'knn_probe',
    'linear_probe', 'part_miou', 'patch_token_norms', 'read_partimagenet', 'read_pascal_part',
    'read_scalars', 'register_assignment', 'register_attention_profile',
    'register_dictionary_report', 'register_palette', 'register_patch_similarity',
    'register_similarity', 'register_usage', 'registers_in_use', 'render_dictionary_heatmap',
    'render_norm_histograms', 'render_outlier_fractions', 'render_part_overlay',
    'render_similarity_grid', 'render_training_curves', 'segment_parts', 'similarity_maps',
    'single_segment_miou',
    'step_statistics', 'token_norm_stats', 'train_attention_probe', 'upsample_labels',
    'write_similarity_maps']
