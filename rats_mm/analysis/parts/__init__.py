"""Which parts do the registers find? Part metrics (Hungarian / majority mIoU, NMI, ARI),
patch segmentation (by register, by k-means) and its upsampling to pixels, similarity maps
and their pictures, the part-dataset readers, the part evaluation and the register
dictionary."""
from .dictionary import build_register_dictionary, render_dictionary_heatmap
from .dictionary_report import register_dictionary_report
from .grid import upsample_labels
from .maps import write_similarity_maps
from .metrics import clustering_scores, confusion_matrix, part_miou
from .part_eval import evaluate_parts, segment_parts, single_segment_miou
from .readers import PartFolder, read_partimagenet, read_pascal_part
from .segment import kmeans, kmeans_assignment, register_assignment
from .similarity import (register_patch_similarity, render_part_overlay,
                         render_similarity_grid, similarity_maps)

__all__ = ['PartFolder', 'build_register_dictionary', 'clustering_scores', 'confusion_matrix',
           'evaluate_parts', 'kmeans', 'kmeans_assignment', 'part_miou', 'read_partimagenet',
           'read_pascal_part', 'register_assignment', 'register_dictionary_report',
           'register_patch_similarity', 'render_dictionary_heatmap', 'render_part_overlay',
           'render_similarity_grid', 'segment_parts', 'similarity_maps', 'upsample_labels',
           'write_similarity_maps', 'single_segment_miou']
