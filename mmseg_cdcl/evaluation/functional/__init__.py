from .paired_bootstrap import miou_from_counts, paired_bootstrap_miou

__all__ = ['miou_from_counts', 'paired_bootstrap_miou']
