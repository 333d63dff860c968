"""Batches of Dataset Alternation Training: every iteration holds a batch of each dataset."""

import math
import zlib
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from mmseg.registry import DATA_SAMPLERS
from torch.utils.data import Sampler

LOOKAHEAD = 16  # batches made at a time


def arrange(groups: List[list], interleave: bool = True) -> list:
    """One batch of each dataset's draws: alternating (A, B, A, B, ...) with ``interleave`` when
    the groups have equal sizes, else one group after the other."""
    if interleave and len({len(group) for group in groups}) == 1:
        return [item for column in zip(*groups) for item in column]
    return [item for group in groups for item in group]


@DATA_SAMPLERS.register_module()
class MultiDatasetSampler(Sampler):
    """Infinite, seeded batch sampler over a ``MultiDataset`` for DAT.

    Iteration ``s`` holds ``batch_sizes[i]`` samples of every dataset ``i`` with
    ``s % intervals[i] == 0`` (the paper's interval t; 1 for all datasets is DAT). When these
    datasets have equal batch sizes, their samples alternate (A, B, A, B, ...), so that DSBN
    normalises all of them in one BatchNorm call without copying activations; otherwise, or with
    ``interleave=False``, each dataset's samples are contiguous. Each dataset runs through its
    own reshuffled passes, independently of the others' sizes. Batches, their order and their
    seeds depend on the datasets' names, not on their order in the ``MultiDataset`` (which a
    config written to the work dir does not keep: mmengine sorts dict keys). With several
    processes, each draws its own ``batch_sizes[i]`` (per process, as MMSeg's ``batch_size``)
    from its share of every pass, disjoint from the other processes' shares. Batch ``s`` is a
    function of the seed and ``s`` alone, so a resumed run continues at iteration ``k``
    (:meth:`set_step`) without loading the ``k`` batches before.
    Each drawn sample comes with its own augmentation seed (keys ``(index, seed)``), so the
    augmentations repeat as well, whatever the number of workers.

    It is a batch sampler: mmengine hands it the loader's ``sampler``, whose dataset and seed
    it takes. Example::

        train_dataloader = dict(
            batch_size=None,  # the per-dataset batch_sizes below make the batch
            sampler=dict(type='InfiniteSampler'),
            batch_sampler=dict(type='MultiDatasetSampler',
                               batch_sizes=dict(cityscapes=8, bdd100k=8)),
            dataset=dict(type='MultiDataset', datasets=dict(cityscapes=..., bdd100k=...)))

    Args:
        sampler (Sampler, optional): The loader's sampler; its ``dataset`` and ``seed`` are used.
        batch_sizes (dict[str, int]): Samples of each dataset per iteration and process, by
            dataset name.
        intervals (dict[str, int], optional): Dataset ``name`` takes part every
            ``intervals[name]`` iterations. Defaults to 1 for every dataset.
        batch_size (None): The loader's ``batch_size``, which must be None.
        interleave (bool): Alternate datasets of equal batch sizes. Defaults to True. Set False
            for models in channels_last memory format: DSBN sees alternating datasets side by
            side in NCHW only, and copies a channels_last batch to NCHW and back (it warns).
        shuffle (bool): Reshuffle every pass of every dataset. Defaults to True.
        dataset (MultiDataset, optional): Instead of ``sampler``.
        seed (int, optional): Defaults to the sampler's seed, else a seed shared by all ranks.
        rank, world_size (int, optional): Default to the distributed environment's.
    """

    def __init__(
        self,
        sampler: Optional[Sampler] = None,
        batch_sizes: Dict[str, int] = None,
        intervals: Optional[Dict[str, int]] = None,
        batch_size: Optional[int] = None,
        interleave: bool = True,
        shuffle: bool = True,
        dataset=None,
        seed: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ):
        if batch_size is not None:
            raise ValueError(
                f'train_dataloader.batch_size={batch_size} conflicts with '
                'MultiDatasetSampler.batch_sizes: set batch_size=None'
            )
        self.sampler = sampler  # mmengine's DistSamplerSeedHook looks for batch_sampler.sampler
        self.dataset = dataset if dataset is not None else sampler.dataset
        names = getattr(self.dataset, 'dataset_names', None)
        if names is None:
            raise TypeError(
                f'MultiDatasetSampler needs a MultiDataset, got {type(self.dataset).__name__}'
            )
        self.dataset_names = list(names)
        # Datasets by name: a dumped config lists them in another order than the original.
        self._order = sorted(range(len(names)), key=lambda i: names[i])
        self._name_keys = [zlib.crc32(name.encode()) for name in names]
        self.batch_sizes = self._per_dataset(batch_sizes, 'batch_sizes', None)
        self.intervals = self._per_dataset(intervals, 'intervals', 1)
        if min(self.intervals) != 1:
            raise ValueError(
                f'MultiDatasetSampler.intervals='
                f'{dict(zip(self.dataset_names, self.intervals))}: some dataset '
                'must take part in every iteration (interval 1)'
            )
        self.interleave = interleave
        self.shuffle = shuffle
        if seed is None:
            seed = getattr(sampler, 'seed', None)
        self.seed = sync_random_seed() if seed is None else seed
        dist_rank, dist_world_size = get_dist_info()
        self.rank = dist_rank if rank is None else rank
        self.world_size = dist_world_size if world_size is None else world_size
        ranges = [self.dataset.dataset_range(i) for i in range(len(self.dataset_names))]
        self._starts = [r.start for r in ranges]
        self._sizes = [len(r) for r in ranges]
        self._passes = {}  # (dataset, pass) -> permutation; the current passes only
        self._step = 0

    def _per_dataset(self, values, key: str, default: Optional[int]) -> List[int]:
        names = self.dataset_names
        if values is None and default is not None:
            values = {}
        if isinstance(values, (list, tuple)):
            raise ValueError(
                f'MultiDatasetSampler.{key}={list(values)!r} is a list: give it by dataset name, '
                f'e.g. {dict(zip(names, values))}; a list pairs values with datasets by their '
                'order, which the config mmengine writes to the work dir does not keep'
            )
        if isinstance(values, dict):
            unknown, missing = set(values) - set(names), set(names) - set(values)
            if unknown or (missing and default is None):
                raise ValueError(
                    f'MultiDatasetSampler.{key} names {sorted(values)} but the datasets are {names}'
                )
            values = [values.get(name, default) for name in names]
        if values is None:
            raise ValueError(
                f'MultiDatasetSampler.{key} is missing: expected one value per '
                f'dataset, by name, for {names}'
            )
        if not all(isinstance(v, int) and v > 0 for v in values):
            raise ValueError(
                f'MultiDatasetSampler.{key}={dict(zip(names, values))}: expected positive ints'
            )
        return list(values)

    def set_step(self, step: int) -> None:
        """Start the next iteration over the batches at iteration ``step`` (resume)."""
        self._step = step

    def set_seed(self, seed: int) -> None:
        """Draw the batches of ``seed`` (resume: the interrupted run's seed)."""
        self.seed = seed
        self._passes = {}

    def state(self) -> dict:
        """What the batches depend on besides the step (saved with checkpoints)."""
        return dict(
            seed=self.seed,
            world_size=self.world_size,
            batch_sizes=dict(zip(self.dataset_names, self.batch_sizes)),
            intervals=dict(zip(self.dataset_names, self.intervals)),
        )

    def __iter__(self) -> Iterator[List[Tuple[int, int]]]:
        """Batches of ``(index, augmentation seed)`` keys (see :class:`MultiDataset`)."""
        step = self._step
        while True:
            # Made LOOKAHEAD at a time: between batches, loading evicts this code from the
            # CPU's caches, which made a batch cost ~60 µs instead of ~13.
            yield from [self._keys(s) for s in range(step, step + LOOKAHEAD)]
            step += LOOKAHEAD

    def _keys(self, step: int) -> List[Tuple[int, int]]:
        # Each draw's own seed: its augmentations do not depend on which process or worker
        # loads it, nor on what was loaded before, so a resumed run repeats them.
        keyed = []
        for d, group in self._draws(step):
            seeds = np.random.SeedSequence([self.seed, step, self.rank, self._name_keys[d]])
            keyed.append(list(zip(group, seeds.generate_state(len(group)).tolist())))
        return arrange(keyed, self.interleave)

    def batch(self, step: int) -> List[int]:
        """This process's batch of iteration ``step``."""
        return arrange([group for _, group in self._draws(step)], self.interleave)

    def datasets(self, step: int) -> List[str]:
        """The datasets taking part in iteration ``step`` (the same in every process)."""
        return [self.dataset_names[i] for i in self._order if not step % self.intervals[i]]

    def _draws(self, step: int) -> List[Tuple[int, List[int]]]:
        """The samples of each dataset taking part in iteration ``step``, by name."""
        draws = []
        for i in self._order:
            size, interval = self.batch_sizes[i], self.intervals[i]
            if step % interval:
                continue
            # Samples of dataset i this process drew before this iteration.
            draws.append((i, self._stream(i, math.ceil(step / interval) * size, size)))
        return draws

    def _stream(self, i: int, position: int, count: int) -> List[int]:
        """Items ``position ..`` of this process's share of dataset ``i``'s endless sequence of
        shuffled passes: every pass is dealt out to the processes as DistributedSampler does,
        so at every iteration their samples are disjoint."""
        n, world_size = self._sizes[i], self.world_size
        share = math.ceil(n / world_size)  # per process and pass (wrapping, as torch pads)
        out = []
        # Plain Python: a batch is a few items, for which numpy's per-call cost dominates.
        for p in range(position, position + count):
            epoch, offset = divmod(p, share)
            out.append(
                int(self._permutation(i, epoch)[(offset * world_size + self.rank) % n])
                + self._starts[i]
            )
        return out

    def _permutation(self, i: int, epoch: int) -> np.ndarray:
        key = (i, epoch)
        if key not in self._passes:
            for old in [k for k in self._passes if k[0] == i and k[1] < epoch - 1]:
                del self._passes[old]
            n = self._sizes[i]
            rng = np.random.default_rng([self.seed, self._name_keys[i], epoch])
            self._passes[key] = rng.permutation(n) if self.shuffle else np.arange(n)
        return self._passes[key]

    def __len__(self) -> int:
        """Iterations for the dataset that takes longest to pass through once."""
        return max(
            math.ceil(n / (b * self.world_size)) * t
            for n, b, t in zip(self._sizes, self.batch_sizes, self.intervals)
        )
