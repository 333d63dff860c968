"""mmseg_cdcl.evaluation.bn_statistics: its statistics are the checkpoints' tensors, its
divergence the Wasserstein distance computed by hand, and wrong inputs are named; its command
line, tools/analysis/bn_statistics.py, writes and prints the same."""

import json
import os.path as osp
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import save_checkpoint
from mmseg.registry import MODELS

from conftest import REPO, small_cdcl_cfg
from mmseg_cdcl.evaluation import bn_statistics

TOOL = osp.join(REPO, 'tools', 'analysis', 'bn_statistics.py')
NAMES = ('cityscapes', 'bdd100k')
LAYER = 'backbone.layer2.0.bn1'  # 128 channels, after backbone.layer2.0.conv1


def _plain_cfg():
    """The single-dataset PSPNet-R18-D8 of the small CDCL model: MMSeg's, with BatchNorm."""
    cfg = small_cdcl_cfg(num_classes=(5,))
    cfg.update(type='EncoderDecoder')
    cfg.pop('dataset_names')
    cfg['backbone'].update(type='ResNetV1c', norm_cfg=dict(type='BN', requires_grad=True))
    cfg['backbone'].pop('num_datasets')
    for head, kind in (('decode_head', 'PSPHead'), ('auxiliary_head', 'FCNHead')):
        cfg[head].update(type=kind, num_classes=5, norm_cfg=dict(type='BN', requires_grad=True))
    return cfg


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """A CDCL config and checkpoint whose DSBN branches hold random running statistics (and
    known ones at LAYER), and a single-dataset checkpoint of the same network."""
    init_default_scope('mmseg')  # module scope: before conftest's per-test fixture
    root = tmp_path_factory.mktemp('bn_statistics')
    Config(dict(model=small_cdcl_cfg(names=NAMES))).dump(str(root / 'cdcl.py'))
    gen = torch.Generator().manual_seed(0)
    cdcl = MODELS.build(small_cdcl_cfg(names=NAMES)).state_dict()
    plain = MODELS.build(_plain_cfg()).state_dict()
    for state_dict in (cdcl, plain):
        for key, value in state_dict.items():
            if key.endswith('running_mean'):
                value.copy_(torch.randn(value.shape, generator=gen))
            elif key.endswith('running_var'):
                value.copy_(torch.rand(value.shape, generator=gen) * 3 + 0.1)
    cdcl[f'{LAYER}.bns.0.running_mean'].fill_(1.0)
    cdcl[f'{LAYER}.bns.0.running_var'].fill_(4.0)
    cdcl[f'{LAYER}.bns.1.running_mean'].fill_(-2.0)
    cdcl[f'{LAYER}.bns.1.running_var'].fill_(9.0)
    save_checkpoint(dict(meta={}, state_dict=cdcl), str(root / 'cdcl.pth'))
    save_checkpoint(dict(meta={}, state_dict=plain), str(root / 'iter_2.pth'))
    return root, cdcl, plain


def _conv_of(norm):
    """The conv whose output ``norm`` normalises in MMSeg's ResNet and ConvModule."""
    parent, _, child = norm.rpartition('.')
    if child in ('bn1', 'bn2'):
        return f'{parent}.conv{child[-1]}'
    return f'{parent}.conv' if child == 'bn' else f'{parent}.{int(child) - 1}'  # Sequential


def _stats(tensor):
    values = tensor.double()
    return dict(mean=values.mean().item(), std=values.std(unbiased=False).item())


def test_statistics_and_divergence_equal_the_checkpoints(checkpoints, tmp_path):
    root, cdcl, plain = checkpoints
    returned = bn_statistics(
        str(root / 'cdcl.py'),
        [str(root / 'cdcl.pth'), str(root / 'iter_2.pth')],
        out_dir=str(tmp_path),
        layers=[LAYER],
    )
    assert (tmp_path / 'bn_statistics.png').stat().st_size > 50_000
    summary = json.loads((tmp_path / 'bn_statistics.json').read_text())
    assert summary == json.loads(json.dumps(returned))  # the file holds what is returned

    # 'iter_2.pth' is named after its folder, as an mmengine run's checkpoint.
    single = root.name
    series = ['cdcl: cityscapes', 'cdcl: bdd100k', single]
    assert [s for c in summary['checkpoints'] for s in c['series']] == series
    assert summary['checkpoints'][0]['datasets'] == list(NAMES)
    dsbn = [k[: -len('.bns.0.running_mean')] for k in cdcl if k.endswith('.bns.0.running_mean')]
    assert [layer['name'] for layer in summary['layers']] == dsbn and len(dsbn) == 28
    for layer in summary['layers']:
        name = layer['name']
        running = {
            s: (cdcl[f'{name}.bns.{d}.running_mean'], cdcl[f'{name}.bns.{d}.running_var'])
            for d, s in enumerate(series[:2])
        }
        running[single] = (plain[f'{name}.running_mean'], plain[f'{name}.running_var'])
        for s, (mean, var) in running.items():
            assert layer['running_mean'][s] == pytest.approx(_stats(mean), rel=1e-12)
            assert layer['running_var'][s] == pytest.approx(_stats(var), rel=1e-12)
        assert layer['channels'] == running[single][0].numel()
        conv = layer['conv']
        assert conv == _conv_of(name)
        assert layer['conv_weight']['cdcl'] == pytest.approx(
            dict(_stats(cdcl[f'{conv}.weight']), numel=cdcl[f'{conv}.weight'].numel()), rel=1e-12
        )
        assert layer['conv_weight'][single] == pytest.approx(
            dict(_stats(plain[f'{conv}.weight']), numel=plain[f'{conv}.weight'].numel()), rel=1e-12
        )
        assert [w['between'] for w in layer['wasserstein']] == [
            series[:2],
            [series[0], single],
            [series[1], single],
        ]

    # At LAYER: N(1, 2^2) against N(-2, 3^2) in every channel: W2 = sqrt(3^2 + 1^2).
    layer = summary['layers'][dsbn.index(LAYER)]
    assert layer['running_mean']['cdcl: cityscapes'] == dict(mean=1.0, std=0.0)
    assert layer['running_var']['cdcl: bdd100k'] == dict(mean=9.0, std=0.0)
    assert layer['wasserstein'][0]['paired'] == pytest.approx(np.sqrt(10), rel=1e-12)
    assert layer['wasserstein'][0]['unpaired'] == pytest.approx(np.sqrt(10), rel=1e-12)
    # Against the single-dataset model's random statistics: channel by channel, and with its
    # means and stds each sorted.
    mean = plain[f'{LAYER}.running_mean'].double()
    std = plain[f'{LAYER}.running_var'].double().sqrt()
    paired = ((mean - 1) ** 2 + (std - 2) ** 2).sqrt().mean().item()
    unpaired = ((mean.sort().values - 1) ** 2 + (std.sort().values - 2) ** 2).sqrt().mean().item()
    assert layer['wasserstein'][1]['paired'] == pytest.approx(paired, rel=1e-12)
    assert layer['wasserstein'][1]['unpaired'] == pytest.approx(unpaired, rel=1e-12)
    # Random statistics in both branches (stem.1): unpaired sorts both series.
    layer = summary['layers'][0]
    mean_a, mean_b = (cdcl[f'backbone.stem.1.bns.{d}.running_mean'].double() for d in (0, 1))
    std_a, std_b = (cdcl[f'backbone.stem.1.bns.{d}.running_var'].double().sqrt() for d in (0, 1))
    unpaired = (
        (
            (mean_a.sort().values - mean_b.sort().values) ** 2
            + (std_a.sort().values - std_b.sort().values) ** 2
        )
        .sqrt()
        .mean()
    )
    assert layer['wasserstein'][0]['unpaired'] == pytest.approx(unpaired.item(), rel=1e-12)


def test_errors_name_the_file_and_what_was_expected(checkpoints, tmp_path):
    root, _, plain = checkpoints
    config, ckpt, single = (str(root / f) for f in ('cdcl.py', 'cdcl.pth', 'iter_2.pth'))
    e_ckpt, e_single = re.escape(ckpt), re.escape(single)
    with pytest.raises(
        ValueError,
        match=rf'{e_single}: no DSBN layer \(keys '
        r"'<layer>.bns.<d>.running_mean'\); expected the CDCL model's checkpoint",
    ):
        bn_statistics(config, [single])
    with pytest.raises(
        ValueError,
        match=rf"{e_ckpt}: layer 'backbone.stem.1' is a DSBN; "
        'checkpoints after the first must be single-dataset models',
    ):
        bn_statistics(config, [ckpt, ckpt], labels=['a', 'b'])
    with pytest.raises(
        ValueError,
        match=r"unknown layer 'backbone.layer1.0.norm1': the DSBN "
        rf'layers of {e_ckpt} are backbone.stem.1, backbone.stem.4, ',
    ):
        bn_statistics(config, [ckpt], layers=['backbone.layer1.0.norm1'])
    three = Config(dict(model=small_cdcl_cfg(num_classes=(5, 3, 2), names=('a', 'b', 'c'))))
    with pytest.raises(
        ValueError,
        match=rf"{e_ckpt}: DSBN layer 'backbone.stem.1' has 2 branches "
        r"but the config has 3 datasets \['a', 'b', 'c'\]",
    ):
        bn_statistics(three, [ckpt])
    Config(dict(model=_plain_cfg())).dump(str(tmp_path / 'pspnet.py'))
    with pytest.raises(
        ValueError,
        match=r'pspnet.py: model.dataset_names is missing; expected '
        "the CDCL model's config",
    ):
        bn_statistics(str(tmp_path / 'pspnet.py'), [ckpt])
    with pytest.raises(ValueError, match=r'--labels gives 1 labels for 2 checkpoints'):
        bn_statistics(config, [ckpt, single], labels=['cdcl'])
    with pytest.raises(FileNotFoundError, match=r'missing.pth: no such checkpoint file'):
        bn_statistics(config, [str(tmp_path / 'missing.pth')])

    other = {f'segmentor.{k}': v for k, v in plain.items()}
    save_checkpoint(dict(state_dict=other), str(tmp_path / 'other.pth'))
    with pytest.raises(ValueError, match=r'other.pth: none of its BatchNorm layers'):
        bn_statistics(config, [ckpt, str(tmp_path / 'other.pth')])
    narrow = dict(plain, **{'backbone.stem.1.running_mean': torch.zeros(7)})
    save_checkpoint(dict(state_dict=narrow), str(tmp_path / 'narrow.pth'))
    with pytest.raises(
        ValueError,
        match=r"narrow.pth: layer 'backbone.stem.1' has 7 channels "
        rf'where {e_ckpt} has 32',
    ):
        bn_statistics(config, [ckpt, str(tmp_path / 'narrow.pth')])


@pytest.mark.slow
def test_command_line_writes_the_statistics_and_prints_the_median_divergences(
    checkpoints, tmp_path
):
    root, _, _ = checkpoints
    files = [str(root / f) for f in ('cdcl.py', 'cdcl.pth', 'iter_2.pth')]
    result = subprocess.run(
        [sys.executable, TOOL, *files, '--out-dir', str(tmp_path), '--labels', 'cdcl', 'single'],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected = bn_statistics(files[0], files[1:], labels=['cdcl', 'single'])
    assert json.loads((tmp_path / 'bn_statistics.json').read_text()) == json.loads(
        json.dumps(expected)
    )
    assert (tmp_path / 'bn_statistics.png').stat().st_size > 50_000
    assert len(expected['layers']) == 28 and len(expected['layers'][0]['wasserstein']) == 3
    medians = {}
    for layer in expected['layers']:
        for w in layer['wasserstein']:
            medians.setdefault(tuple(w['between']), []).append(w)
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        'cdcl: 28 DSBN layers, branches cityscapes, bdd100k',
        'single: BatchNorm statistics at 28 of them',
        'W2 between BN statistics, median over layers (channels paired / unpaired):',
    ]
    between = ('cdcl: cityscapes', 'single')
    paired, unpaired = (np.median([w[k] for w in medians[between]]) for k in ('paired', 'unpaired'))
    assert f'  cdcl: cityscapes ↔ single   {paired:.3g} / {unpaired:.3g}' in lines
    assert lines[-2:] == [
        f'wrote {tmp_path / "bn_statistics.json"}',
        f'wrote {tmp_path / "bn_statistics.png"}',
    ]
    result = subprocess.run(
        [sys.executable, TOOL, *files[:2], '--out-dir', str(tmp_path), '--layers', 'nowhere'],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "error: unknown layer 'nowhere'" in result.stderr
