"""One output label space for the datasets of a CDCL model (a target taxonomy)."""

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

IGNORE = 255
Mapping = Union[Sequence[Optional[str]], Dict[str, Optional[str]], None]


class LabelSpace:
    """Each dataset's classes mapped to target classes: predictions of any branch come out in
    the target classes (probabilities of the classes mapped to one target are summed), and
    labels of a dataset can be evaluated there. Many-to-one is allowed; a class mapped to
    ``None`` (or not named in a dict) is ignored.

    Example (CamVid's 11 classes as the output of a Cityscapes + BDD100K model)::

        model = dict(label_space=dict(
            classes=('sky', 'building', ...),           # the target classes
            palette=[[128, 128, 128], ...],
            mapping=dict(cityscapes=dict(road='road', sidewalk='sidewalk', wall='building',
                                         ...),           # by class name; others ignored
                         bdd100k=['road', 'sidewalk', 'building', ...])))  # per class id

    Args:
        classes (Sequence[str]): Target class names.
        mapping (dict): Per dataset name: a list with one target class name (or None) per class
            id of the dataset, a dict from dataset class names to target class names (needs
            ``dataset_classes``), or None where the dataset's classes are the target classes.
        dataset_names (Sequence[str]): The model's datasets.
        num_classes (Sequence[int]): Classes of each dataset.
        palette (Sequence[Sequence[int]], optional): RGB colour of each target class.
        dataset_classes (dict[str, Sequence[str] | str], optional): Class names of the
            datasets, or the type of a registered dataset (``'CityscapesDataset'``) whose
            ``METAINFO`` holds them.
        defer_class_names (bool): Keep a mapping by class names of a dataset whose class names
            are not known yet until :meth:`set_dataset_classes` gives them (the CDCL model
            learns them from its checkpoint or training data); using it before raises.
            Defaults to False: raise at once.

    Raises:
        ValueError: unknown datasets or class names, wrong lengths; names what and where.
    """

    def __init__(
        self,
        classes: Sequence[str],
        mapping: Dict[str, Mapping],
        dataset_names: Sequence[str],
        num_classes: Sequence[int],
        palette: Optional[Sequence[Sequence[int]]] = None,
        dataset_classes: Optional[Dict[str, Union[Sequence[str], str]]] = None,
        defer_class_names: bool = False,
    ):
        self.classes = tuple(classes)
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(
                f'label_space.classes={list(self.classes)}: expected distinct target class names'
            )
        if palette is not None and len(palette) != len(self.classes):
            raise ValueError(
                f'label_space.palette has {len(palette)} colours for {len(self.classes)} classes'
            )
        for c, colour in zip(self.classes, palette or ()):
            if (
                not isinstance(colour, (list, tuple))
                or len(colour) != 3
                or not all(isinstance(v, (int, np.integer)) and 0 <= v <= 255 for v in colour)
            ):
                raise ValueError(
                    f"label_space.palette: the colour of class '{c}' is {colour!r}; expected "
                    '[r, g, b], three integers in 0..255'
                )
        self.palette = (
            [list(c) for c in palette]
            if palette is not None
            else [
                # ints, not numpy's: a checkpoint's meta holds it (torch's safe loader)
                [int(v) for v in c]
                for c in np.random.default_rng(0).integers(0, 256, (len(self.classes), 3))
            ]
        )
        mapping = dict(mapping or {})
        for name, targets in mapping.items():
            values = targets.values() if isinstance(targets, dict) else (targets or ())
            unknown = sorted({str(t) for t in values if t is not None and t not in self.classes})
            if unknown:
                raise ValueError(
                    f'label_space.mapping.{name} maps to {unknown}, which are not target '
                    f'classes {list(self.classes)}'
                )
        unknown = set(mapping) - set(dataset_names)
        if unknown:
            raise ValueError(
                f'label_space.mapping names unknown datasets {sorted(unknown)}; '
                f"the model's datasets are {list(dataset_names)}"
            )
        self.dataset_names, self.num_classes = list(dataset_names), list(num_classes)
        self.dataset_classes = {
            name: _registered_classes(classes, name)
            for name, classes in (dataset_classes or {}).items()
        }
        # Mappings by class name waiting for the dataset's class names, by dataset index.
        self._deferred: Dict[int, dict] = {}
        self.tables: List[Optional[List[int]]] = []
        for d, (name, n) in enumerate(zip(dataset_names, num_classes)):
            classes = self.dataset_classes.get(name)
            if defer_class_names and isinstance(mapping.get(name), dict) and classes is None:
                self._deferred[d] = mapping[name]
                self.tables.append(None)
            else:
                self.tables.append(self._table(name, mapping.get(name), n, classes))

    def set_dataset_classes(self, dataset_classes: Dict[str, Sequence[str]]) -> None:
        """Give the class names of datasets, completing the mappings by class name that
        waited for them."""
        for d, mapping in list(self._deferred.items()):
            name = self.dataset_names[d]
            if dataset_classes.get(name) is not None:
                self.dataset_classes[name] = tuple(dataset_classes[name])
                self.tables[d] = self._table(
                    name, mapping, self.num_classes[d], self.dataset_classes[name]
                )
                del self._deferred[d]

    def table(self, dataset: int) -> List[int]:
        """Target id (or IGNORE) of each of the dataset's class ids."""
        table = self.tables[dataset]
        if table is None:
            name = self.dataset_names[dataset]
            raise ValueError(
                f'label_space.mapping.{name} maps class names, but the class names of dataset '
                f"'{name}' are not known: the checkpoint does not state them; give "
                f'label_space.dataset_classes.{name} (its class names, or a registered dataset '
                "type such as 'CityscapesDataset'), or the mapping as a list of "
                f'{self.num_classes[dataset]} target names (one per class id)'
            )
        return table

    def _table(
        self, name: str, mapping: Mapping, num_classes: int, classes: Optional[Sequence[str]]
    ) -> List[int]:
        """Target id (or IGNORE) of each of the dataset's class ids."""
        key = f'label_space.mapping.{name}'
        if mapping is None:
            if (
                classes is not None
                and tuple(classes) == self.classes
                or (classes is None and num_classes == len(self.classes))
            ):
                mapping = list(self.classes)
            else:
                raise ValueError(
                    f'{key} is missing: map the {num_classes} classes of dataset '
                    f"'{name}' to the target classes (a list of {num_classes} "
                    'target names or None, or a dict by class name)'
                )
        if isinstance(mapping, dict):
            if classes is None:
                raise ValueError(
                    f'{key} maps class names, but the class names of dataset '
                    f"'{name}' are not known: give the mapping as a list of "
                    f'{num_classes} target names (one per class id)'
                )
            unknown = sorted(set(mapping) - set(classes))
            if unknown:
                raise ValueError(
                    f"{key} names {unknown}, not classes of dataset '{name}' ({list(classes)})"
                )
            mapping = [mapping.get(c) for c in classes]
        mapping = list(mapping)
        if len(mapping) != num_classes:
            raise ValueError(
                f"{key} has {len(mapping)} entries but dataset '{name}' has {num_classes} classes"
            )
        unknown = sorted({t for t in mapping if t is not None and t not in self.classes})
        if unknown:
            raise ValueError(
                f'{key} maps to {unknown}, which are not target classes {list(self.classes)}'
            )
        return [IGNORE if t is None else self.classes.index(t) for t in mapping]

    def matrix(self, dataset: int, like: Tensor) -> Tensor:
        """(target classes, dataset classes): 1 where a dataset class maps to a target."""
        table = self.table(dataset)
        m = like.new_zeros(len(self.classes), len(table))
        for source, target in enumerate(table):
            if target != IGNORE:
                m[target, source] = 1
        return m

    def probabilities(self, logits: Tensor, dataset: int) -> Tensor:
        """Target-class probabilities of a branch's logits ``(N, C_d, H, W)`` (or ``(C_d, H, W)``):
        the sum of the probabilities of the classes mapped to each target."""
        probs = logits.softmax(dim=-3)
        return torch.einsum('ts,...shw->...thw', self.matrix(dataset, probs), probs)

    def labels(self, label: Tensor, dataset: int) -> Tensor:
        """A dataset's label map in target class ids (ignored: IGNORE)."""
        lut = torch.full((256,), IGNORE, dtype=torch.long, device=label.device)
        table = self.table(dataset)
        lut[: len(table)] = torch.tensor(table, device=label.device)
        return lut[label.long().clamp(0, 255)]

    def meta(self) -> dict:
        return dict(classes=self.classes, palette=self.palette)


def _registered_classes(classes: Union[Sequence[str], str], name: str) -> Tuple[str, ...]:
    """Class names given as such, or as the type of a registered dataset."""
    if not isinstance(classes, str):
        return tuple(classes)
    from mmseg.registry import DATASETS

    dataset = DATASETS.get(classes)
    names = getattr(dataset, 'METAINFO', {}).get('classes')
    if names is None:
        raise ValueError(
            f"label_space.dataset_classes.{name}='{classes}': expected class names "
            'or the type of a registered dataset with METAINFO classes '
            "(e.g. 'CityscapesDataset')"
        )
    return tuple(names)
