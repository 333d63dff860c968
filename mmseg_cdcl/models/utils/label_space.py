"""One output label space for the datasets of a CDCL model (a target taxonomy)."""

from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor

IGNORE = 255
Target = Union[None, str, Sequence[str]]  # one class's: none, a target, a union of targets
Mapping = Union[Sequence[Target], Dict[str, Target], None]


class LabelSpace:
    """Each dataset's classes mapped to target classes: predictions of any branch come out in
    the target classes (probabilities of the classes mapped to one target are summed), and
    labels of a dataset can be evaluated there. Many-to-one is allowed; a class mapped to
    ``None`` (or not named in a dict, or to ``[]``) is ignored.

    A class may also be a union of target classes (a list of names, Bevandić & Šegvić, arXiv
    2108.11224): CamVid's ``tree`` is Cityscapes' vegetation and terrain. Per-dataset heads
    cannot split a class's probability among its targets, so only a model whose one classifier
    predicts the target classes (``universal=True``, ``CDCLEncoderDecoder(universal_head=
    True)``) takes unions; it needs each dataset's classes to partition the targets they cover
    (no target in two classes of a dataset), so that the probability of a dataset class is
    the sum of its targets' (:meth:`dataset_probabilities`). The labels of a dataset with a
    union cannot be put in the target classes (:meth:`table` refuses).

    Example (CamVid's 11 classes as the output of a Cityscapes + BDD100K model)::

        model = dict(label_space=dict(
            classes=('sky', 'building', ...),           # the target classes
            palette=[[128, 128, 128], ...],
            mapping=dict(cityscapes=dict(road='road', sidewalk='sidewalk', wall='building',
                                         ...),           # by class name; others ignored
                         bdd100k=['road', 'sidewalk', 'building', ...])))  # per class id

    Args:
        classes (Sequence[str]): Target class names.
        mapping (dict): Per dataset name: a list with one target class name (or None, or a list
            of target names: a union) per class id of the dataset, a dict from dataset class
            names to them (needs ``dataset_classes``), or None where the dataset's classes are
            the target classes.
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
        universal (bool): The branches' logits are in the target classes (one classifier of
            ``len(classes)`` outputs): unions allowed, each dataset's classes a partition of
            their targets. Defaults to False (each branch predicts its dataset's classes).

    Raises:
        ValueError: unknown datasets or class names, wrong lengths, a union where a branch
            predicts its dataset's classes, a target in two classes of a dataset of a universal
            space; names what and where.
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
        universal: bool = False,
    ):
        self.universal = bool(universal)
        self.classes = tuple(classes)
        if not self.classes or len(set(self.classes)) != len(self.classes):
            raise ValueError(
                f'label_space.classes={list(self.classes)}: expected distinct target class names'
            )
        if palette is not None and len(palette) != len(self.classes):
            raise ValueError(
                f'label_space.palette has {len(palette)} colours for {len(self.classes)} classes'
                ' (a label space set over an inherited one merges into it: give it '
                '_delete_=True, or assign it rather than update())'
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
            values = [t for v in values for t in _targets(v, f'label_space.mapping.{name}')]
            unknown = sorted({str(t) for t in values if t not in self.classes})
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
        # Per dataset (None while deferred), per class id: the ids of its target classes.
        self.unions: List[Optional[List[Tuple[int, ...]]]] = []
        for d, (name, n) in enumerate(zip(dataset_names, num_classes)):
            classes = self.dataset_classes.get(name)
            if defer_class_names and isinstance(mapping.get(name), dict) and classes is None:
                self._deferred[d] = mapping[name]
                self.unions.append(None)
            else:
                self.unions.append(self._unions(name, mapping.get(name), n, classes))

    @property
    def tables(self) -> List[Optional[List[int]]]:
        """Per dataset, the target id (or IGNORE) of each class id; None where it is not
        known yet or a class is a union."""
        return [
            None if u is None or any(len(t) > 1 for t in u) else [t[0] if t else IGNORE for t in u]
            for u in self.unions
        ]

    def set_dataset_classes(self, dataset_classes: Dict[str, Sequence[str]]) -> None:
        """Give the class names of datasets, completing the mappings by class name that
        waited for them."""
        for d, mapping in list(self._deferred.items()):
            name = self.dataset_names[d]
            if dataset_classes.get(name) is not None:
                self.dataset_classes[name] = tuple(dataset_classes[name])
                self.unions[d] = self._unions(
                    name, mapping, self.num_classes[d], self.dataset_classes[name]
                )
                del self._deferred[d]

    def table(self, dataset: int) -> List[int]:
        """Target id (or IGNORE) of each of the dataset's class ids: the map of its labels into
        the target classes.

        Raises:
            ValueError: the mapping waits for the dataset's class names, or a class of the
                dataset is a union of target classes (its labels have no one target id).
        """
        unions = self.union_ids(dataset)
        several = [k for k, t in enumerate(unions) if len(t) > 1]
        if several:
            name, k = self.dataset_names[dataset], several[0]
            raise ValueError(
                f'label_space.mapping.{name}: class {self._class_name(dataset, k)} is the union '
                f'of the target classes {[self.classes[t] for t in unions[k]]}, so the labels of '
                f"dataset '{name}' cannot be put in the target classes (labels in the target "
                'classes can score predictions there)'
            )
        return [t[0] if t else IGNORE for t in unions]

    def union_ids(self, dataset: int) -> List[Tuple[int, ...]]:
        """The target ids of each of the dataset's class ids (empty: the class is ignored)."""
        unions = self.unions[dataset]
        if unions is None:
            name = self.dataset_names[dataset]
            raise ValueError(
                f'label_space.mapping.{name} maps class names, but the class names of dataset '
                f"'{name}' are not known: the checkpoint does not state them; give "
                f'label_space.dataset_classes.{name} (its class names, or a registered dataset '
                "type such as 'CityscapesDataset'), or the mapping as a list of "
                f'{self.num_classes[dataset]} target names (one per class id)'
            )
        return unions

    def _class_name(self, dataset: int, k: int) -> str:
        classes = self.dataset_classes.get(self.dataset_names[dataset])
        return repr(classes[k]) if classes is not None else f'{k}'

    def _unions(
        self, name: str, mapping: Mapping, num_classes: int, classes: Optional[Sequence[str]]
    ) -> List[Tuple[int, ...]]:
        """The target ids of each of the dataset's class ids, checked."""
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
        targets = [_targets(t, key) for t in mapping]
        unknown = sorted({t for ts in targets for t in ts if t not in self.classes})
        if unknown:
            raise ValueError(
                f'{key} maps to {unknown}, which are not target classes {list(self.classes)}'
            )
        unions = [tuple(self.classes.index(t) for t in ts) for ts in targets]

        def named(k):
            return repr(classes[k]) if classes is not None else f'{k}'

        for k, ts in enumerate(unions):
            if len(set(ts)) != len(ts):
                raise ValueError(
                    f'{key}: class {named(k)} names a target class twice: {targets[k]}'
                )
            if len(ts) > 1 and not self.universal:
                raise ValueError(
                    f'{key} maps class {named(k)} to several target classes {list(targets[k])}: '
                    "a per-dataset head's probability of one class cannot be split among "
                    'several targets. Map it to one, or predict the target classes with one '
                    'classifier (model.universal_head=True)'
                )
        if self.universal:
            owner = {}
            for k, ts in enumerate(unions):
                for t in ts:
                    if t in owner:
                        raise ValueError(
                            f"{key}: target class '{self.classes[t]}' is in both class "
                            f'{named(owner[t])} and class {named(k)}: with universal_head=True '
                            "each of a dataset's classes is a union of target classes, and a "
                            'target may belong to one class of a dataset only'
                        )
                    owner[t] = k
        return unions

    def matrix(self, dataset: int, like: Tensor) -> Tensor:
        """(target classes, dataset classes): 1 where the target is (in) the dataset class.
        ``matrix @ p_dataset`` sums a branch's class probabilities into the targets,
        ``matrix.T @ p_target`` the targets' into a dataset's classes (unions)."""
        unions = self.union_ids(dataset)
        m = like.new_zeros(len(self.classes), len(unions))
        for source, targets in enumerate(unions):
            for target in targets:
                m[target, source] = 1
        return m

    def probabilities(self, logits: Tensor, dataset: int) -> Tensor:
        """Target-class probabilities of a branch's logits ``(N, C, H, W)`` (or ``(C, H, W)``):
        the sum of the probabilities of the dataset's classes mapped to each target; in a
        universal space, whose branches' logits are the targets', their softmax."""
        probs = logits.softmax(dim=-3)
        if self.universal:
            return probs
        return torch.einsum('ts,...shw->...thw', self.matrix(dataset, probs), probs)

    def dataset_probabilities(self, logits: Tensor, dataset: int) -> Tensor:
        """Dataset-class probabilities of a universal branch's target-class logits
        ``(N, T, H, W)`` (or ``(T, H, W)``): P_d(c) = Σ_{u∈U_d(c)} p(u)."""
        if not self.universal:
            raise ValueError('dataset_probabilities: the branches predict their datasets already')
        probs = logits.softmax(dim=-3)
        return torch.einsum('ts,...thw->...shw', self.matrix(dataset, probs), probs)

    def labels(self, label: Tensor, dataset: int) -> Tensor:
        """A dataset's label map in target class ids (ignored: IGNORE)."""
        lut = torch.full((256,), IGNORE, dtype=torch.long, device=label.device)
        table = self.table(dataset)
        lut[: len(table)] = torch.tensor(table, device=label.device)
        return lut[label.long().clamp(0, 255)]

    def meta(self) -> dict:
        return dict(classes=self.classes, palette=self.palette)


def _targets(target: Target, key: str) -> Tuple[str, ...]:
    """One class's target names: none, one, or a union (a list)."""
    if target is None:
        return ()
    if isinstance(target, str):
        return (target,)
    if isinstance(target, (list, tuple)) and all(isinstance(t, str) for t in target):
        return tuple(target)
    raise ValueError(
        f'{key}: {target!r} is not a target class name, None or a list of target class names'
    )


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
