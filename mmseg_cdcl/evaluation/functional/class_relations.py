"""How the classes of two datasets relate, read from cross-dataset confusions.

UniDet (Zhou et al., arXiv 2102.13086) runs every dataset's head on every dataset's images and
merges the classes one head recovers of another dataset; Ma et al. (arXiv 2407.10534) do so for
segmentation with per-head confusions; Bevandić & Šegvić (arXiv 2108.11224) let one dataset's
class be a union of universal classes. Here, for datasets a and b:

* ``share_ab[i, j]``: of the pixels a labels ``i``, the share b's head predicts as ``j``;
* ``share_ba[j, i]``: of the pixels b labels ``j``, the share a's head predicts as ``i``.

Class ``i`` is *inside* ``j`` when b's head puts most of ``i`` into ``j`` (``share_ab >=
inside``) and a's head finds some ``i`` among b's ``j`` (``share_ba >= confirm``); the *same*
when each is inside the other; the two *overlap* when neither is inside the other but each
holds a good part of the other (both ``>= overlap``). Anything else is unrelated: a class one
dataset never labels (Cityscapes' ``train`` is void in CamVid) is predicted as *something* by
the other head, but that something's pixels are not called it back, so it stays unconfirmed.
"""

from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

SAME, INSIDE, CONTAINS, OVERLAP = 'same', 'inside', 'contains', 'overlap'
# class_relations' defaults, which docs/label_space.md measured with.
THRESHOLDS = dict(inside=0.6, confirm=0.05, overlap=0.2)


class Relation(NamedTuple):
    """Class ``a`` of dataset a, class ``b`` of dataset b (indices), their relation (``a`` is
    ``kind`` ``b``) and the shares it rests on."""

    a: int
    b: int
    kind: str
    share_ab: float
    share_ba: float


def row_shares(confusion: np.ndarray) -> np.ndarray:
    """Each row of a confusion (labels x predictions) divided by its sum (0 for empty rows)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    total = confusion.sum(axis=1, keepdims=True)
    return np.divide(confusion, total, out=np.zeros_like(confusion), where=total > 0)


def class_relations(
    confusion_ab: np.ndarray,
    confusion_ba: np.ndarray,
    inside: float = 0.6,
    confirm: float = 0.05,
    overlap: float = 0.2,
) -> List[Relation]:
    """Every related pair of classes of datasets a and b.

    Args:
        confusion_ab (np.ndarray): ``(K_a, K_b)`` pixels of a's images: label ``i`` of a,
            prediction ``j`` of b's head.
        confusion_ba (np.ndarray): ``(K_b, K_a)`` pixels of b's images: label of b, prediction
            of a's head.
        inside (float): Share of a class the other head must put into one class for it to be
            inside that class. Defaults to 0.6 (above 1/2: a class is inside one class only).
        confirm (float): Share of that class's pixels the first head must call the first class
            back. Defaults to 0.05.
        overlap (float): Share each way of two classes that overlap. Defaults to 0.2.

    Returns:
        list[Relation]: by class of a, then class of b.
    """
    ab, ba = row_shares(confusion_ab), row_shares(confusion_ba)
    if ab.shape != ba.T.shape:
        raise ValueError(
            f'confusion_ab {ab.shape} and confusion_ba {ba.shape}: expected '
            '(K_a, K_b) and (K_b, K_a)'
        )
    if not 0.5 < inside <= 1 or not 0 < confirm <= inside or not 0 < overlap <= inside:
        raise ValueError(
            f'inside={inside}, confirm={confirm}, overlap={overlap}: expected '
            '1/2 < inside <= 1 and 0 < confirm, overlap <= inside'
        )
    relations = []
    for i, j in zip(*np.nonzero((ab > 0) | (ba.T > 0))):
        x, y = ab[i, j], ba[j, i]
        if x >= inside and y >= inside:
            kind = SAME
        elif x >= inside and y >= confirm:
            kind = INSIDE
        elif y >= inside and x >= confirm:
            kind = CONTAINS
        elif x >= overlap and y >= overlap:
            kind = OVERLAP
        else:
            continue
        relations.append(Relation(int(i), int(j), kind, float(x), float(y)))
    return relations


def label_space_from_relations(
    classes: Dict[str, Sequence[str]],
    relations: List[Relation],
    palettes: Optional[Dict[str, Sequence]] = None,
) -> dict:
    """The label space of two datasets whose class relations are known.

    The classes joined by relations form groups (connected components). Where every class of
    one dataset is related to at most one class of the other, that one is the finer: it maps
    into the other's classes, which are the label space (the coarser of two 1:1 taxonomies is
    the one of fewer classes, else the second), and its unrelated classes map to None.
    Otherwise each group is one target class (the finest space both map into), named by its
    one class of a dataset if it has one. Either way the universal classes are given: one per
    related pair (the smaller class of it, or ``'i ∩ j'`` where they overlap) and one per
    unrelated class, with each dataset class as a union of them.

    Args:
        classes (dict[str, Sequence[str]]): Class names of the two datasets, a then b.
        relations (list[Relation]): :func:`class_relations` of a and b.
        palettes (dict, optional): RGB colour of each class, by dataset.

    Returns:
        dict: ``label_space`` (``classes``, ``palette``, ``mapping``: the shipped form),
        ``finer`` (the dataset that maps into the other, or None), ``universal`` (names) and
        ``unions`` (per dataset and class, its universal classes).
    """
    (a, names_a), (b, names_b) = classes.items()
    names = {a: list(names_a), b: list(names_b)}
    nodes = [(d, k) for d in (a, b) for k in range(len(names[d]))]
    edges = {n: [] for n in nodes}  # node: [(other node, kind as seen from node)]
    seen_from_b = {SAME: SAME, INSIDE: CONTAINS, CONTAINS: INSIDE, OVERLAP: OVERLAP}
    for r in relations:
        edges[(a, r.a)].append(((b, r.b), r.kind))
        edges[(b, r.b)].append(((a, r.a), seen_from_b[r.kind]))
    # A dataset is finer where each of its classes lies inside at most one class of the other.
    into = [
        d
        for d in (a, b)
        if all(
            len(edges[n]) <= 1 and all(kind in (SAME, INSIDE) for _, kind in edges[n])
            for n in nodes
            if n[0] == d
        )
    ]
    if into:
        finer = into[0] if len(into) == 1 else (a if len(names_a) >= len(names_b) else b)
        coarse = b if finer == a else a
        groups = [[(coarse, k)] for k in range(len(names[coarse]))]
        target_names = list(names[coarse])
        mapping = {
            d: list(names[coarse])
            if d == coarse
            else [
                names[coarse][edges[(d, k)][0][0][1]] if edges[(d, k)] else None
                for k in range(len(names[d]))
            ]
            for d in (a, b)
        }
    else:
        finer, groups, grouped = None, [], set()
        for node in nodes:
            group, todo = [], [node]
            while todo:
                n = todo.pop()
                if n not in grouped:
                    grouped.add(n)
                    group.append(n)
                    todo += [m for m, _ in edges[n]]
            if group:
                groups.append(sorted(group))
        target_names = _distinct([_group_name(g, names, a, b) for g in groups])
        mapping = {d: [None] * len(names[d]) for d in (a, b)}
        for name, group in zip(target_names, groups):
            for d, k in group:
                mapping[d][k] = name
    pairs = []  # (universal class, (dataset, class)): the classes each universal class is in
    for r in relations:
        x, y = names_a[r.a], names_b[r.b]
        part = (
            (x, a)
            if r.kind in (SAME, INSIDE)
            else (y, b)
            if r.kind == CONTAINS
            else (f'{x} ∩ {y}', None)
        )
        pairs += [(part, (a, r.a)), (part, (b, r.b))]
    pairs += [((names[d][k], d), (d, k)) for d, k in nodes if not edges[(d, k)]]
    universal = _distinct(list(dict.fromkeys(part for part, _ in pairs)))
    index = {part: u for u, part in enumerate(dict.fromkeys(part for part, _ in pairs))}
    unions = {d: {c: [] for c in names[d]} for d in (a, b)}
    for part, (d, k) in pairs:
        unions[d][names[d][k]].append(universal[index[part]])
    palettes = palettes or {}
    palette = [
        list(palettes[g[0][0]][g[0][1]]) if palettes.get(g[0][0]) is not None else None
        for g in groups
    ]
    label_space = dict(classes=tuple(target_names), mapping=mapping)
    if all(p is not None for p in palette):
        label_space['palette'] = palette
    return dict(label_space=label_space, finer=finer, universal=universal, unions=unions)


def _group_name(group, names, a, b):
    """A group's one class of a dataset (the union of the rest), else its classes of a joined;
    with the dataset the name comes from."""
    for d in (b, a):
        members = [names[d][k] for e, k in group if e == d]
        if len(members) == 1:
            return members[0], d
    return '+'.join(names[a][k] for e, k in group if e == a), a


def _distinct(named: List[tuple]) -> List[str]:
    """Names of ``(name, dataset)`` pairs, a name given twice qualified by its dataset."""
    counts = {}
    for name, _ in named:
        counts[name] = counts.get(name, 0) + 1
    return [name if counts[name] == 1 or d is None else f'{name} ({d})' for name, d in named]
