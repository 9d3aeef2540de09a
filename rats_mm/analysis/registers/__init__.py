"""How are the registers used, and do they read different things? Register similarity and
usage over a dataset, the compress / communicate / broadcast statistics of every block, token
norms, and the attention probe (a diagnostic signal that learns attention in minutes)."""
from .attention import register_attention_profile, step_statistics
from .attention_probe import train_attention_probe
from .stats import register_similarity, registers_in_use
from .token_norms import (dataset_token_norms, patch_token_norms, render_norm_histograms,
                          render_outlier_fractions, token_norm_stats)
from .usage import register_usage

__all__ = ['dataset_token_norms', 'patch_token_norms', 'register_attention_profile',
           'register_similarity', 'register_usage', 'registers_in_use',
           'render_norm_histograms', 'render_outlier_fractions', 'step_statistics',
           'token_norm_stats', 'train_attention_probe']
