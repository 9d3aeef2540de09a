"""How good are the frozen features? Feature extraction (every rank its share) and the
k-NN / linear probes on them."""
from .classifiers import knn_probe, linear_probe
from .features import FrozenEmbedding, extract_features

__all__ = ['FrozenEmbedding', 'extract_features', 'knn_probe', 'linear_probe']
