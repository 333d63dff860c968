"""Every form of a CDCL checkpoint, through every loader, loads each dataset's branches by name
or is refused.

The forms come from one real tools/train.py run (conftest's ``trained_cdcl``, Cityscapes +
CamVid) and the package's own writers; each loads into the same model with its datasets in the
other order, and each tensor of the loaded model is compared with the checkpoint's tensor of
the branch of the same dataset name (``torch.equal``). Forms that stock loaders read are saved
with ``torch.save`` as their writers save them (weights and meta: what those loaders read).
"""

import copy
import re
import time
from collections import OrderedDict

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from mmengine.runner import Runner, load_checkpoint
from mmseg.apis import init_model
from mmseg.registry import MODELS

from conftest import logged, small_cdcl_cfg
from mmseg_cdcl.apis import add_dataset_branch, export_single_dataset, load_cdcl_checkpoint
from mmseg_cdcl.testing import unformatted
from mmseg_cdcl.utils import mmengine_checkpoints_allowed
from mmseg_cdcl.utils.mmengine_internals import load_checkpoint_to_model

NAMES = ['cityscapes', 'camvid']  # trained_cdcl's branch order
# A per-dataset tensor: a DSBN's branch ('<bn>.bns.<d>.<key>') or a classifier's.
BRANCH = re.compile(r'^(.*?)(\.bns|\.conv_seg)\.(\d+)\.(.*)$')
PER_DATASET = ('num_classes', 'ignore_index', 'loss_weights')


def reordered(model_cfg: dict) -> dict:
    """The model config with its datasets in the reverse order."""
    cfg = copy.deepcopy(model_cfg)
    n = len(cfg['dataset_names'])

    def flip(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in PER_DATASET and isinstance(value, (list, tuple)) and len(value) == n:
                    node[key] = list(value)[::-1]
                else:
                    flip(value)

    flip(cfg)
    cfg['dataset_names'] = list(cfg['dataset_names'])[::-1]
    return cfg


def assert_branches(model, source: dict, source_names, by_name: bool = True) -> None:
    """Each tensor of ``model`` equals ``source``'s: dataset d's branch the source's branch of
    the same dataset name (``by_name``) or of the same position; a plain (single-dataset)
    ``source``'s tensor in every branch it fits."""
    per_dataset = 0
    for key, value in model.state_dict().items():
        m = BRANCH.match(key)
        if m is None:
            expected = source[key]
        elif source_names is None:  # a plain checkpoint: BatchNorm's keys, one classifier
            module, kind, _, name = m.groups()
            expected = source[f'{module}.{name}' if kind == '.bns' else f'{module}{kind}.{name}']
            if expected.shape != value.shape:
                continue  # a classifier of other classes starts fresh
        else:
            module, kind, d, name = m.groups()
            d = int(d)
            s = source_names.index(model.dataset_names[d]) if by_name else d
            expected = source[f'{module}{kind}.{s}.{name}']
            per_dataset += 1
        assert torch.equal(value, expected), key
    assert source_names is None or per_dataset > 100


def test_a_wrapped_checkpoints_modules_get_their_own_metadata():
    """DDP's state dict ('module.' keys, nn.DataParallel's the same) through the package's
    loader: the model gets the wrapped model's metadata, its datasets, not the wrapper's."""
    torch.manual_seed(0)
    source = MODELS.build(small_cdcl_cfg((4, 4), ('a', 'b')))
    state = torch.nn.DataParallel(source).state_dict()
    model = MODELS.build(small_cdcl_cfg((4, 4), ('a', 'b')))
    seen = {}
    for name in ('', 'backbone.stem.1'):
        model.get_submodule(name).register_load_state_dict_pre_hook(
            lambda module, sd, prefix, metadata, *args: seen.setdefault(prefix, metadata)
        )
    load_checkpoint_to_model(model, dict(state_dict=state), strict=True)
    assert seen == {
        '': state._metadata['module'],
        'backbone.stem.1.': state._metadata['module.backbone.stem.1'],
    }
    assert seen['']['dataset_names'] == ['a', 'b']


@pytest.fixture(scope='module')
def forms(trained_cdcl, data_cwd, tmp_path_factory):
    """Each form's file, the weights it holds (a CDCL state dict; the export's a plain one),
    their datasets in branch order (None: plain) and the config of its model."""
    out = tmp_path_factory.mktemp('forms')
    config = str(trained_cdcl / 'config.py')
    runner_file = str(trained_cdcl / 'iter_2.pth')
    cfg = Config.fromfile(config)
    model = MODELS.build(copy.deepcopy(cfg.model))
    checkpoint = load_cdcl_checkpoint(model, runner_file, strict=True)
    state, meta = checkpoint['state_dict'], checkpoint['meta']
    assert state._metadata['']['dataset_names'] == NAMES

    def saved(name, **checkpoint):
        torch.save(checkpoint, str(out / f'{name}.pth'))
        return str(out / f'{name}.pth')

    # DistributedDataParallel's state dict, as a user saves it: keys 'module.'-prefixed.
    dist.init_process_group('gloo', init_method=f'file://{out}/pg', rank=0, world_size=1)
    try:
        wrapped = torch.nn.parallel.DistributedDataParallel(model).state_dict()
    finally:
        dist.destroy_process_group()
    assert list(wrapped)[0].startswith('module.') and 'dataset_names' in wrapped._metadata['module']
    old = OrderedDict(state)  # as written before state dicts stated their datasets
    old._metadata = copy.deepcopy(state._metadata)
    for key in ('dataset_names', 'datasets'):
        del old._metadata[''][key]
    added_config, added_file, _ = add_dataset_branch(
        config,
        runner_file,
        'bdd100k',
        str(data_cwd / 'data' / 'bdd100k' / 'images' / '10k' / 'train'),
        str(out / 'added'),
        source='cityscapes',
    )
    added_model = MODELS.build(Config.fromfile(added_config).model)
    added_state = load_cdcl_checkpoint(added_model, added_file)['state_dict']
    _, exported_file = export_single_dataset(config, runner_file, 'camvid', str(out / 'export'))
    exported = torch.load(exported_file, weights_only=True)['state_dict']
    cdcl = (state, NAMES, cfg.model)
    return dict(
        runner=(runner_file, *cdcl),
        saved=(saved('saved', state_dict=state, meta=meta), *cdcl),
        ddp=(saved('ddp', state_dict=wrapped), *cdcl),
        ddp_meta=(saved('ddp_meta', state_dict=wrapped, meta=meta), *cdcl),
        old=(saved('old', state_dict=old, meta=meta), *cdcl),
        added=(
            added_file,
            added_state,
            [*NAMES, 'bdd100k'],
            Config.fromfile(added_config).model,
        ),
        exported=(exported_file, exported, None, cfg.model),
        config=config,
    )


def load(loader: str, model_cfg, path: str, config: str, tmp_path):
    """The model of ``model_cfg`` after ``loader`` loaded ``path``, and the lines logged."""
    model_cfg = copy.deepcopy(model_cfg)
    if loader in ('load_cdcl_checkpoint', 'load_checkpoint'):
        model = MODELS.build(model_cfg)
        with logged() as lines:
            (load_cdcl_checkpoint if loader == 'load_cdcl_checkpoint' else load_checkpoint)(
                model, path, map_location='cpu'
            )
        return model, lines
    cfg = unformatted(Config.fromfile(config))
    cfg.model = model_cfg
    if loader == 'init_model':
        with logged() as lines:
            return init_model(cfg, path, device='cpu'), lines
    # tools/test.py's and tools/train.py's load_from: Runner.load_or_resume, hooks first
    if loader == 'Runner without the hook':
        cfg.custom_hooks = [h for h in cfg.custom_hooks if h.type != 'CheckpointDatasetsHook']
    else:
        assert any(h.type == 'CheckpointDatasetsHook' for h in cfg.custom_hooks)
    cfg.update(load_from=path, work_dir=str(tmp_path), experiment_name=f'load_{time.time()}')
    cfg.visualizer.name = cfg.experiment_name
    runner = Runner.from_cfg(cfg)
    # as Runner.train/test call it: after the before_run hooks, of which CheckpointAllowListHook
    # lets torch's safe loader read the Runner's own checkpoints
    with logged() as lines, mmengine_checkpoints_allowed():
        runner.load_or_resume()
    return runner.model, lines


READ_META = ['load_cdcl_checkpoint', 'Runner with CheckpointDatasetsHook']
BLIND = ['load_checkpoint', 'init_model', 'Runner without the hook']  # meta unseen or late
BY_NAME = (
    [('runner', loader) for loader in READ_META]
    + [(form, loader) for form in ('saved', 'ddp_meta', 'added') for loader in READ_META + BLIND]
    + [('ddp', loader) for loader in READ_META + ['load_checkpoint', 'Runner without the hook']]
    + [('old', loader) for loader in READ_META]
)


@pytest.mark.slow
@pytest.mark.parametrize('form, loader', BY_NAME)
def test_each_form_loads_each_datasets_branches_by_name(forms, form, loader, tmp_path):
    path, source, names, model_cfg = forms[form]
    model, lines = load(loader, reordered(model_cfg), path, forms['config'], tmp_path)
    assert list(model.dataset_names) == names[::-1]
    assert_branches(model, source, names)
    assert not [line for line in lines if 'does not state its datasets' in line]


@pytest.mark.slow
@pytest.mark.parametrize('loader', BLIND)
def test_an_old_checkpoint_where_its_meta_is_unseen_loads_by_position_with_a_warning(
    forms, loader, tmp_path
):
    path, source, names, model_cfg = forms['old']
    model, lines = load(loader, model_cfg, path, forms['config'], tmp_path)
    assert_branches(model, source, names, by_name=False)
    assert (
        'CDCL checkpoint: it does not state its datasets (written before checkpoints did): its '
        "branches load by position as the datasets ['cityscapes', 'camvid'], right only if it "
        'was trained with model.dataset_names in that order. Loaders that read its meta '
        '(load_cdcl_checkpoint, init_cdcl_model, a config with CheckpointDatasetsHook) load it '
        'by name (docs/usage.md#loading-a-checkpoint)'
    ) in lines
    # In the other order its classifiers refuse it here (datasets of the same classes load
    # swapped, with the warning: tests/test_models/test_checkpoint_datasets.py).
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the checkpoint's classifiers do not fit the model's datasets ['camvid', "
            "'cityscapes']: a checkpoint of other datasets or classes? dataset 'camvid' "
            '(branch 0 of the checkpoint) decode_head.conv_seg.0.weight: checkpoint '
            '(19, 128, 1, 1), model (11, 128, 1, 1)'
        ),
    ):
        load(loader, reordered(model_cfg), path, forms['config'], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize('loader', READ_META + BLIND)
def test_an_exported_checkpoint_loads_into_every_branch_it_fits(forms, loader, tmp_path):
    path, source, _, model_cfg = forms['exported']
    model, lines = load(loader, reordered(model_cfg), path, forms['config'], tmp_path)
    assert_branches(model, source, None)
    assert any("auxiliary_head.conv_seg of dataset 'cityscapes'" in line for line in lines)


@pytest.mark.slow
@pytest.mark.parametrize(
    'form, loader',
    [(form, loader) for form in ('ddp', 'ddp_meta') for loader in READ_META + ['load_checkpoint']]
    + [('old', loader) for loader in READ_META],
)
def test_a_checkpoint_of_other_datasets_is_refused(forms, form, loader, tmp_path):
    """The issue's case: a DDP checkpoint without meta loaded into a Cityscapes + Mapillary
    model; an old one where its meta is read (without, it loads by position: above)."""
    path, _, _, model_cfg = forms[form]
    other = copy.deepcopy(model_cfg)
    other['dataset_names'] = ['cityscapes', 'mapillary']
    with pytest.raises(
        ValueError,
        match=re.escape(
            "the checkpoint's datasets ['cityscapes', 'camvid'] are not the model's "
            "['cityscapes', 'mapillary']: set model.branch_map"
        ),
    ):
        load(loader, other, path, forms['config'], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize('wrapped', [False, True])
@pytest.mark.parametrize('loader', READ_META)
def test_a_statement_that_contradicts_its_training_config_is_refused(
    forms, loader, wrapped, tmp_path
):
    """The issue's case: the names of the statement swapped, the weights unchanged."""
    path = forms['ddp_meta' if wrapped else 'saved'][0]
    checkpoint = torch.load(path, weights_only=True)
    statement = checkpoint['state_dict']._metadata['module' if wrapped else '']
    statement['dataset_names'] = statement['dataset_names'][::-1]
    torch.save(checkpoint, str(tmp_path / 'swapped.pth'))
    with pytest.raises(ValueError) as error:
        load(loader, forms['saved'][3], str(tmp_path / 'swapped.pth'), forms['config'], tmp_path)
    assert str(error.value) == (
        f'{tmp_path / "swapped.pth"} contradicts itself: its state dict states its branches are '
        "the datasets ['camvid', 'cityscapes'], its training config (meta.cfg) has "
        "model.dataset_names=['cityscapes', 'camvid']: its statement or its meta was edited, or "
        "the meta is another model's; which branch is which dataset is unknown"
    )
