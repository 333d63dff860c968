"""mmengine's private parts that mmseg-cdcl relies on (utils/mmengine_internals.py) still exist
and behave as relied on: each test fails, naming the part, when mmengine changes it."""

import inspect
import os.path as osp
import pickle
import time
from collections import OrderedDict

import mmengine.config.config as mmengine_config
import mmengine.config.utils as mmengine_config_utils
import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.optim import OptimWrapper
from mmengine.runner import CheckpointLoader, IterBasedTrainLoop, Runner, save_checkpoint
from mmengine.testing.runner_test_case import ToyDataset, ToyModel
from torch import nn
from torch.utils.data import DataLoader

from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.utils.mmengine_internals import (
    config_dict,
    config_file_of,
    infinite_dataloader_iterator,
    load_checkpoint_to_model,
    memoized_config_formatting,
    memoized_package_config_lookup,
    registered_statistics,
    resume_arguments,
    set_resume_checkpoint,
    uncount_backward,
)


def _toy_runner(work_dir, max_iters=2, **kwargs):
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=ToyDataset(),
            batch_size=3,
            num_workers=0,
            sampler=dict(type='InfiniteSampler', shuffle=False),
        ),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False)),
        default_scope='mmengine',
        experiment_name=f'internals_{time.time()}',
        **kwargs,
    )


def test_resume_arguments_and_set_resume_checkpoint_steer_load_or_resume(tmp_path):
    _toy_runner(tmp_path / 'run').train()  # iter_1.pth, iter_2.pth
    assert resume_arguments(_toy_runner(tmp_path / 'a', load_from='x.pth')) == (False, 'x.pth')
    runner = _toy_runner(tmp_path / 'b', resume=True)
    assert resume_arguments(runner) == (True, None)
    first = str(tmp_path / 'run' / 'iter_1.pth')
    set_resume_checkpoint(runner, first)
    assert resume_arguments(runner) == (True, first)
    runner.train_loop  # built, as in Runner.train before load_or_resume
    with mmengine_checkpoints_allowed():  # as CheckpointAllowListHook in Runner.train
        runner.load_or_resume()
    assert runner.iter == 1  # resumed from iter_1.pth, not from b's (absent) last_checkpoint


def test_iter_based_train_loop_iterates_an_infinite_dataloader_iterator(tmp_path):
    loader = DataLoader(list(range(3)), batch_size=1)
    iterator = infinite_dataloader_iterator(loader)
    assert [next(iterator).item() for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]  # restarted
    runner = _toy_runner(tmp_path)
    assert isinstance(runner.train_loop, IterBasedTrainLoop)
    # DATTrainLoop replaces the loop's iterator with one of the same kind
    assert type(runner.train_loop.dataloader_iterator) is type(iterator)


def test_uncount_backward_makes_several_backwards_one_iteration():
    model = nn.Linear(2, 1)
    wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), accumulative_counts=2)
    wrapper.initialize_count_status(model, 0, 4)
    for part in range(3):  # one iteration in three parts
        wrapper.backward(model(torch.ones(1, 2)).sum())
        if part < 2:
            uncount_backward(wrapper)
    assert wrapper.inner_count == 1 and not wrapper.should_update()
    wrapper.backward(model(torch.ones(1, 2)).sum())  # the second iteration
    assert wrapper.inner_count == 2 and wrapper.should_update()


class _Recording(nn.Linear):
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args):
        self.metadata = local_metadata
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args)


def test_load_checkpoint_to_model_strips_module_and_keeps_metadata(tmp_path):
    """load_cdcl_checkpoint states the datasets in the state dict's _metadata."""
    model = nn.Sequential(_Recording(2, 1))
    state = OrderedDict(
        {'module.0.weight': torch.full((1, 2), 3.0), 'module.0.bias': torch.full((1,), 4.0)}
    )
    state._metadata = OrderedDict({'0': {'version': 1, 'datasets': ['a', 'b']}})
    checkpoint = dict(state_dict=state)
    assert load_checkpoint_to_model(model, checkpoint, strict=True) is checkpoint
    assert model[0].weight.tolist() == [[3.0, 3.0]] and model[0].bias.tolist() == [4.0]
    assert model[0].metadata == {'version': 1, 'datasets': ['a', 'b']}


class _Pickled:  # any class: not allow-listed for torch's safe loader
    pass


def test_checkpoint_loader_reads_with_torchs_safe_loader(tmp_path):
    """The public reader that replaced mmengine's _load_checkpoint keeps weights_only."""
    path = str(tmp_path / 'ok.pth')
    save_checkpoint(dict(state_dict={'w': torch.ones(2)}, meta=dict(iter=3)), path)
    loaded = CheckpointLoader.load_checkpoint(path, 'cpu', logger='silent')
    assert loaded['meta'] == dict(iter=3) and loaded['state_dict']['w'].tolist() == [1.0, 1.0]
    torch.save(dict(state_dict={}, meta=_Pickled()), tmp_path / 'bad.pth')
    with pytest.raises(pickle.UnpicklingError, match='_Pickled'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'bad.pth'), 'cpu', logger='silent')


def test_registered_statistics_are_what_checkpoints_pickle():
    buffer = HistoryBuffer()
    statistics = registered_statistics()
    for name in ('min', 'max', 'current', 'mean'):
        assert statistics[name] is getattr(HistoryBuffer, name)
    assert buffer.__getstate__()['statistics_methods'] is statistics


def test_config_file_of_a_package_config_and_config_dict_in_place():
    path = config_file_of('mmseg::_base_/default_runtime.py')
    assert osp.isfile(path) and path.endswith(
        osp.join('mmseg', '.mim', 'configs', '_base_', 'default_runtime.py')
    )
    cfg = Config(dict(a=1))
    config_dict(cfg)['a'] = 2
    assert cfg.a == 2


def test_config_formatting_is_yapfs_done_once_per_text_within_the_context(monkeypatch):
    """mmengine formats ``pretty_text`` through the module's ``FormatCode``: within the context
    the same text as yapf's, yapf run once per text (the last ``entries`` texts), any other call
    passed through with yapf's signature; outside, yapf's own again."""
    cfg = Config(dict(model=dict(type='X', channels=[1, 2, 3]), work_dir='w'))
    yapf = mmengine_config.FormatCode
    assert yapf.__module__ == 'yapf.yapflib.yapf_api'
    expected = cfg.pretty_text
    calls = []

    def counted(
        unformatted_source, filename='<unknown>', style_config=None, lines=None, print_diff=False
    ):
        calls.append(unformatted_source)
        return yapf(unformatted_source, filename, style_config, lines, print_diff)

    monkeypatch.setattr(mmengine_config, 'FormatCode', counted)
    with memoized_config_formatting(entries=1):
        memoized = mmengine_config.FormatCode
        assert inspect.signature(memoized) == inspect.signature(counted)
        assert cfg.pretty_text == cfg.pretty_text == expected
        assert len(calls) == 1
        other = Config(dict(a=1))
        other.pretty_text, cfg.pretty_text  # one entry: the first text was dropped for the other
        assert len(calls) == 3
        style = dict(based_on_style='pep8')
        assert memoized('a=1\n', '<unknown>', style) == yapf('a=1\n', style_config=style)
        memoized('a=1\n', '<unknown>', style)  # positional: as yapf's, not kept
        assert len(calls) == 5
    assert mmengine_config.FormatCode is counted
    cfg.pretty_text
    assert len(calls) == 6


def test_package_config_lookup_reads_mmsegs_model_index_once_per_config(monkeypatch):
    """``mmseg::`` configs resolve through ``_get_cfg_metainfo``, which fails for every config
    of mmseg 1.2.2 (its index keeps the ``.py``), and ``Config._get_cfg_path`` then finds the
    file in the package's config folder: within the context the same file, the index read once
    per config and no traceback kept; outside, mmengine's own lookup again."""
    lookup = mmengine_config_utils._get_cfg_metainfo
    assert lookup.__module__ == 'mmengine.config.utils'
    calls = []

    def counted(package_path, cfg_path):
        calls.append(cfg_path)
        return lookup(package_path, cfg_path)

    monkeypatch.setattr(mmengine_config_utils, '_get_cfg_metainfo', counted)
    name = 'pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024'
    path = osp.join(osp.dirname(mmseg.__file__), '.mim', 'configs', f'{name}.py')
    package = osp.dirname(mmseg.__file__)
    with memoized_package_config_lookup():
        assert config_file_of(f'mmseg::{name}.py') == config_file_of(f'mmseg::{name}.py') == path
        assert calls == [name]
        for _ in range(2):
            with pytest.raises(ValueError, match=f'Expected configs: .*but got {name}$') as raised:
                mmengine_config_utils._get_cfg_metainfo(package, name)
            assert raised.value.__traceback__.tb_next.tb_next is None  # raised anew, here
        assert calls == [name]
        # An experiment config the index names as asked: its entry, a copy each time.
        indexed = lookup(package, f'{name}.py')
        assert indexed['Config'] == f'configs/{name}.py'
        answer = mmengine_config_utils._get_cfg_metainfo(package, f'{name}.py')
        answer['Config'] = 'changed'
        again = mmengine_config_utils._get_cfg_metainfo(package, f'{name}.py')
        assert again == indexed and calls == [name, f'{name}.py']
    assert mmengine_config_utils._get_cfg_metainfo is counted
    config_file_of(f'mmseg::{name}.py')
    assert calls == [name, f'{name}.py', name]
