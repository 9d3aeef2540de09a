"""Where is the object? One box per image (LOST on patch keys, or the registers' foreground)
scored by CorLoc, and the box readers (COCO, Pascal VOC)."""
from .boxes import corloc_hits, read_boxes, read_coco_boxes, read_voc_boxes
from .objects import discover_objects, lost_foreground, register_foreground

__all__ = ['corloc_hits', 'discover_objects', 'lost_foreground', 'read_boxes',
           'read_coco_boxes', 'read_voc_boxes', 'register_foreground']
