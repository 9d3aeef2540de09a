"""rats_mm: RATS (Register Attention Transformers) for the OpenMMLab world.

The core (``layers``, ``models``, ``ssl``, ``data``, ``analysis``) needs only PyTorch, timm and
the scientific stack; ``mmseg``, ``mmdet`` and ``engine`` hold the OpenMMLab glue.
"""
__version__ = '0.1.0'
