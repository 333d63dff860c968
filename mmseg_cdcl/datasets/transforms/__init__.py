from .remap_labels import RemapLabels

__all__ = ['RemapLabels']
