"""Label remapping into a merged label space: the paper's "label remapping" baseline."""

from typing import Dict

import numpy as np
from mmcv.transforms import BaseTransform
from mmseg.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RemapLabels(BaseTransform):
    """Map a dataset's label ids into a merged label space (after ``LoadAnnotations``).

    Args:
        mapping (dict[int, int]): Source id -> merged id.
        unmapped (int | None): Id of labels not in ``mapping``: an id (e.g. 255, ignored), or
            None to keep them. Defaults to 255.

    Example:
        >>> # CamVid into Cityscapes' train ids (sky -> sky, building -> building, ...)
        >>> dict(type='RemapLabels', mapping={0: 10, 1: 2, 2: 5, 3: 0, 4: 1, 5: 8, 6: 7,
        ...                                   7: 4, 8: 13, 9: 11, 10: 18})
    """

    def __init__(self, mapping: Dict[int, int], unmapped=255):
        bad = {k: v for k, v in mapping.items() if not (0 <= int(k) < 256 and 0 <= int(v) < 256)}
        if bad:
            raise ValueError(f'RemapLabels.mapping must map uint8 label ids, got {bad}')
        self.mapping = {int(k): int(v) for k, v in mapping.items()}
        self.unmapped = unmapped
        self._table = (
            np.arange(256, dtype=np.uint8)
            if unmapped is None
            else np.full(256, unmapped, dtype=np.uint8)
        )
        for source, target in self.mapping.items():
            self._table[source] = target

    def transform(self, results: dict) -> dict:
        label = results['gt_seg_map']
        results['gt_seg_map'] = self._table[label].astype(label.dtype, copy=False)
        return results

    def __repr__(self) -> str:
        return f'{type(self).__name__}(mapping={self.mapping}, unmapped={self.unmapped})'
