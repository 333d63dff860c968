import itertools
import zlib
from collections import Counter

import numpy as np
import pytest
from mmengine.dataset import BaseDataset

from mmseg_cdcl.datasets import MultiDataset, MultiDatasetSampler


class _Sized(BaseDataset):
    """A dataset of ``n`` empty samples: the sampler only needs sizes."""

    def __init__(self, n):
        self.n = n
        super().__init__(serialize_data=False)

    def load_data_list(self):
        return [dict(i=i) for i in range(self.n)]


def _multi(sizes=(10, 3, 7)):
    return MultiDataset({name: _Sized(n) for name, n in zip('abc', sizes)})


def _sampler(dataset=None, **kwargs):
    kwargs.setdefault('batch_sizes', dict(a=2, b=1, c=3))
    return MultiDatasetSampler(dataset=dataset or _multi(), seed=kwargs.pop('seed', 7), **kwargs)


def _draws(sampler, n):
    """The first ``n`` batches' dataset indices (the keys also carry augmentation seeds)."""
    return [[i for i, _ in batch] for batch in itertools.islice(iter(sampler), n)]


def _owner(i, sizes=(10, 3, 7)):
    bounds = list(itertools.accumulate(sizes))
    return next(d for d, end in enumerate(bounds) if i < end)


def test_batch_composition_contiguous_per_dataset():
    sampler = _sampler()
    for batch in _draws(sampler, 20):
        assert [_owner(i) for i in batch] == [0, 0, 1, 2, 2, 2]


def test_equal_batch_sizes_alternate_datasets_with_the_same_draws_and_seeds():
    interleaved = _sampler(batch_sizes=dict(a=2, b=2, c=2), intervals=dict(c=2))
    contiguous = _sampler(batch_sizes=dict(a=2, b=2, c=2), intervals=dict(c=2), interleave=False)
    batches = list(itertools.islice(iter(interleaved), 4))
    assert [[_owner(i) for i, _ in batch] for batch in batches] == [
        [0, 1, 2, 0, 1, 2],
        [0, 1, 0, 1],
    ] * 2  # c takes part every other iteration
    for batch, other in zip(batches, itertools.islice(iter(contiguous), 4)):
        assert [_owner(i) for i, _ in other] == sorted(_owner(i) for i, _ in batch)
        assert sorted(batch) == sorted(other)  # each draw keeps its augmentation seed
    assert [i for i, _ in batches[2]] == interleaved.batch(2)


def test_each_dataset_passes_through_its_own_reshuffled_passes():
    sampler = _sampler()
    batches = _draws(sampler, 21)  # b: 21 draws = 7 passes of 3
    b_draws = [batch[2] for batch in batches]
    passes = [b_draws[i : i + 3] for i in range(0, 21, 3)]
    assert all(sorted(p) == [10, 11, 12] for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # reshuffled between passes
    a_draws = [i for batch in batches[:5] for i in batch[:2]]  # 10 draws = one pass of a
    assert sorted(a_draws) == list(range(10))


def test_deterministic_by_seed():
    first = _draws(_sampler(), 10)
    assert first == _draws(_sampler(), 10)
    assert first != _draws(_sampler(seed=8), 10)
    assert _draws(_sampler(shuffle=False), 1) == [[0, 1, 10, 13, 14, 15]]


def test_ranks_draw_disjoint_shares():
    dataset = _multi((40, 12, 21))
    ranks = [_sampler(dataset, rank=r, world_size=2) for r in range(2)]
    streams = [_draws(s, 30) for s in ranks]
    # Each pass of dataset a (40 = 2 ranks x 2 per batch x 10 steps) is dealt out to the
    # ranks: disjoint shares, no repeats, everything once.
    for start in (0, 10, 20):
        shares = [[i for batch in s[start : start + 10] for i in batch[:2]] for s in streams]
        assert not set(shares[0]) & set(shares[1])
        assert sorted(shares[0] + shares[1]) == list(range(40))
    # c (21 samples, 3 per batch): each rank's pass is its 11 of them (one padded repeat).
    c = [[i for batch in s[:4] for i in batch[3:]][:11] for s in streams]
    assert len(set(c[0])) == len(set(c[1])) == 11 and len(set(c[0]) | set(c[1])) == 21


def test_intervals_the_paper_t():
    sampler = _sampler(intervals=dict(b=2, c=4))
    owners = [Counter(_owner(i) for i in batch) for batch in _draws(sampler, 8)]
    assert [o[1] for o in owners] == [1, 0, 1, 0, 1, 0, 1, 0]
    assert [o[2] for o in owners] == [3, 0, 0, 0, 3, 0, 0, 0]
    assert all(o[0] == 2 for o in owners)
    # b's draws continue its stream: 4 draws in 8 iterations, one pass of 3 plus one.
    b = [i for batch in _draws(sampler, 8) for i in batch if _owner(i) == 1]
    assert sorted(b[:3]) == [10, 11, 12]


def test_resume_continues_without_replaying():
    sampler = _sampler(intervals=dict(c=3))
    uninterrupted = list(itertools.islice(iter(sampler), 30))
    resumed = _sampler(intervals=dict(c=3))
    resumed.set_step(17)
    assert list(itertools.islice(iter(resumed), 13)) == uninterrupted[17:]  # seeds included


def test_batch_keys_are_a_function_of_the_step():
    sampler = _sampler(intervals=dict(c=3), rank=1, world_size=2)
    sizes = dict(a=2, b=1, c=3)
    for step, keys in enumerate(itertools.islice(iter(sampler), 40)):  # batches made ahead
        indices = sampler.batch(step)
        names = sampler.datasets(step)
        assert names == (['a', 'b', 'c'] if step % 3 == 0 else ['a', 'b'])
        seeds = [
            seed
            for name in names
            for seed in np.random.SeedSequence([7, step, 1, zlib.crc32(name.encode())])
            .generate_state(sizes[name])
            .tolist()
        ]
        assert keys == list(zip(indices, seeds))


def test_batches_do_not_depend_on_the_datasets_order():
    """mmengine's dumped config lists the datasets sorted by name: same batches, same seeds."""
    sizes = dict(cityscapes=10, bdd100k=7)

    def named_batches(order):
        multi = MultiDataset({name: _Sized(sizes[name]) for name in order})
        sampler = MultiDatasetSampler(
            dataset=multi,
            batch_sizes=dict(cityscapes=2, bdd100k=3),
            intervals=dict(bdd100k=2),
            seed=3,
        )
        ranges = {name: multi.dataset_range(d) for d, name in enumerate(order)}
        local = {i: (name, i - r.start) for name, r in ranges.items() for i in r}
        return [
            [(*local[i], seed) for i, seed in batch]
            for batch in itertools.islice(iter(sampler), 12)
        ]

    written = named_batches(['cityscapes', 'bdd100k'])
    assert written == named_batches(['bdd100k', 'cityscapes'])
    assert [name for name, _, _ in written[0]] == ['bdd100k'] * 3 + ['cityscapes'] * 2
    assert [name for name, _, _ in written[1]] == ['cityscapes'] * 2


def test_each_draw_has_its_own_augmentation_seed():
    keys = [k for batch in itertools.islice(iter(_sampler()), 10) for k in batch]
    seeds = [seed for _, seed in keys]
    assert len(set(seeds)) == len(seeds) == 60
    other_rank = [
        k for batch in itertools.islice(iter(_sampler(rank=1, world_size=2)), 10) for k in batch
    ]
    assert not set(seeds) & {seed for _, seed in other_rank}


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (
            dict(batch_sizes=dict(a=2, b=1)),
            r"batch_sizes names \['a', 'b'\] but the datasets are "
            r"\['a', 'b', 'c'\]",
        ),
        (dict(batch_sizes=dict(a=2, b=1, c=1, z=1)), r"names \['a', 'b', 'c', 'z'\]"),
        (
            dict(batch_sizes=[2, 1, 3]),
            r'batch_sizes=\[2, 1, 3\] is a list: give it by dataset '
            r"name, e.g. \{'a': 2, 'b': 1, 'c': 3\}; a list pairs values "
            r'with datasets by their order, which the config mmengine '
            r'writes to the work dir does not keep',
        ),
        (dict(intervals=(1, 2, 2)), r'intervals=\[1, 2, 2\] is a list: give it by dataset name'),
        (
            dict(batch_sizes=dict(a=0, b=1, c=1)),
            r"batch_sizes=\{'a': 0, 'b': 1, 'c': 1\}: "
            r'expected positive ints',
        ),
        (dict(intervals=dict(a=2, b=2, c=2)), r'some dataset must take part in every iteration'),
        (
            dict(batch_size=16),
            r'train_dataloader.batch_size=16 conflicts with '
            r'MultiDatasetSampler.batch_sizes: set batch_size=None',
        ),
    ],
)
def test_config_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _sampler(**kwargs)


def test_needs_a_multi_dataset():
    with pytest.raises(TypeError, match='MultiDatasetSampler needs a MultiDataset, got _Sized'):
        MultiDatasetSampler(dataset=_Sized(3), batch_sizes=dict(a=1))
