"""A branch for a new camera from unlabelled images: AdaBN's statistics, by name everywhere."""

import os
import os.path as osp
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import Compose
from mmengine.structures import PixelData
from mmseg.apis import inference_model
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_cdcl import mmengine_checkpoints_allowed
from mmseg_cdcl.apis import (
    add_dataset_branch,
    dataset_test_pipeline,
    export_single_dataset,
    init_cdcl_model,
)
from mmseg_cdcl.apis.add_dataset_branch import added_dataset_cfg
from mmseg_cdcl.utils import dump_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
STEM_BN = 'backbone.stem.1'  # ResNet-V1c's first BatchNorm: its input is the first conv's output


def bdd_images(data_cwd):
    return str(data_cwd / 'data' / 'bdd100k' / 'images' / '10k' / 'train')


@pytest.fixture(scope='module')
def added(trained_cdcl, data_cwd, tmp_path_factory):
    """The 2-iteration Cityscapes + CamVid model with a 'bdd100k' branch from BDD100K's
    training images (their labels unused), its source chosen by DSBN statistics."""
    out = tmp_path_factory.mktemp('added')
    config, ckpt, info = add_dataset_branch(
        str(trained_cdcl / 'config.py'),
        str(trained_cdcl / 'iter_2.pth'),
        'bdd100k',
        bdd_images(data_cwd),
        str(out),
    )
    return config, ckpt, info


def test_branch_statistics_are_the_images(added, trained_cdcl, data_cwd):
    config, ckpt, info = added
    with mmengine_checkpoints_allowed():
        old = torch.load(str(trained_cdcl / 'iter_2.pth'), weights_only=True)['state_dict']
    new = torch.load(ckpt, weights_only=True)['state_dict']
    names = ['cityscapes', 'camvid']
    assert info['source'] == names[int(np.argmin([info['distances'][n] for n in names]))]
    assert info['num_images'] == 6
    s = names.index(info['source'])
    # By hand: the stem conv's outputs on the six preprocessed images, their mean and unbiased
    # variance over every pixel.
    cfg = Config.fromfile(str(trained_cdcl / 'config.py'))
    pipeline = Compose(
        [
            t
            for t in cfg.test_dataloader.dataset.datasets[info['source']].pipeline
            if t['type'] != 'LoadAnnotations'
        ]
    )
    model = MODELS.build(cfg.model)
    files = sorted(os.listdir(bdd_images(data_cwd)))
    data = [pipeline(dict(img_path=osp.join(bdd_images(data_cwd), f))) for f in files]
    inputs = model.data_preprocessor(
        dict(inputs=[d['inputs'] for d in data], data_samples=[d['data_samples'] for d in data])
    )['inputs']
    conv = torch.nn.Conv2d(3, old['backbone.stem.0.weight'].shape[0], 3, 2, 1, bias=False)
    conv.weight.data = old['backbone.stem.0.weight']
    with torch.no_grad():
        x = conv(inputs).transpose(0, 1).flatten(1).double()
    torch.testing.assert_close(
        new[f'{STEM_BN}.bns.2.running_mean'], x.mean(1).float(), rtol=1e-5, atol=1e-6
    )
    torch.testing.assert_close(
        new[f'{STEM_BN}.bns.2.running_var'], x.var(1).float(), rtol=1e-5, atol=1e-6
    )
    # Everything else of the branch is the source's; the old branches are as they were.
    for key, value in new.items():
        if '.bns.2.' in key and 'running_' not in key and 'num_batches' not in key:
            torch.testing.assert_close(
                value, old[key.replace('.bns.2.', f'.bns.{s}.')], rtol=0, atol=0
            )
        elif '.bns.' not in key and '.conv_seg.2.' in key:
            torch.testing.assert_close(
                value, old[key.replace('.conv_seg.2.', f'.conv_seg.{s}.')], rtol=0, atol=0
            )
        elif '.bns.2.' not in key and '.conv_seg.2.' not in key:
            torch.testing.assert_close(value, old[key], rtol=0, atol=0)
    assert not torch.equal(
        new[f'{STEM_BN}.bns.2.running_mean'], old[f'{STEM_BN}.bns.{s}.running_mean']
    )


def test_new_dataset_loads_by_name_predicts_and_exports(added, data_cwd, tmp_path):
    config, ckpt, info = added
    image = osp.join(bdd_images(data_cwd), sorted(os.listdir(bdd_images(data_cwd)))[0])
    # Its test pipeline is its source's: the dataloaders do not list it (no labels).
    cfg = Config.fromfile(config)
    assert 'bdd100k' not in cfg.test_dataloader.dataset.datasets
    assert (
        dataset_test_pipeline(cfg, 'bdd100k')
        == cfg.test_dataloader.dataset.datasets[info['source']].pipeline
    )
    model = init_cdcl_model(config, ckpt, 'bdd100k')
    assert model.dataset_names == ('cityscapes', 'camvid', 'bdd100k')
    assert model.dataset_meta['classes'] == model.dataset_classes[info['source']]
    routed = inference_model(model, image)
    assert routed.seg_logits.data.shape[0] == {'cityscapes': 19, 'camvid': 11}[info['source']]
    source = inference_model(init_cdcl_model(config, ckpt, info['source']), image)
    assert not torch.equal(routed.seg_logits.data, source.seg_logits.data)  # other statistics
    # Auto chooses among the three branches; the image goes to the new one, which holds the
    # statistics of its camera. (This model's ensemble is refused: CamVid's classes are others.)
    result = inference_model(init_cdcl_model(config, ckpt, 'auto'), image)
    assert set(result.dataset_scores) == {'cityscapes', 'camvid', 'bdd100k'}
    assert abs(sum(result.dataset_scores.values()) - 1) < 1e-5
    assert result.dataset_name == 'bdd100k'

    # Exported, the plain model holds the new branch's statistics.
    _, plain_ckpt = export_single_dataset(config, ckpt, 'bdd100k', str(tmp_path / 'export'))
    plain = torch.load(plain_ckpt, weights_only=True)['state_dict']
    new = torch.load(ckpt, weights_only=True)['state_dict']
    torch.testing.assert_close(
        plain[f'{STEM_BN}.running_mean'], new[f'{STEM_BN}.bns.2.running_mean'], rtol=0, atol=0
    )

    # Labels arrive: the branch trains further with its dataset's loss.
    model.train()
    samples = []
    for _ in range(2):
        sample = SegDataSample(
            metainfo=dict(dataset_name='bdd100k', img_shape=(32, 32), pad_shape=(32, 32))
        )
        classes = {'cityscapes': 19, 'camvid': 11}[info['source']]  # the source's classes
        sample.gt_sem_seg = PixelData(data=torch.randint(0, classes, (1, 32, 32)))
        samples.append(sample)
    losses = model.loss(torch.randn(2, 3, 32, 32), samples)
    assert torch.isfinite(losses['bdd100k.decode.loss_ce'])


def test_config_gets_one_more_dataset(trained_cdcl):
    cfg = Config.fromfile(str(trained_cdcl / 'config.py'))
    new = added_dataset_cfg(cfg, 'bdd100k', 'cityscapes')
    assert new.model.dataset_names == ['cityscapes', 'camvid', 'bdd100k']
    assert new.model.backbone.num_datasets == 3
    assert new.model.decode_head.num_classes == [19, 11, 19]
    assert (
        new.dataset_test_pipelines['bdd100k']
        == cfg.test_dataloader.dataset.datasets.cityscapes.pipeline
    )
    assert cfg.model.dataset_names == ['cityscapes', 'camvid']  # the given config unchanged


def test_written_config_is_the_added_config(added, trained_cdcl):
    config, _, info = added
    cfg = Config.fromfile(str(trained_cdcl / 'config.py'))
    written = Config.fromfile(config)
    assert written.to_dict() == added_dataset_cfg(cfg, 'bdd100k', info['source']).to_dict()
    assert list(written) == list(cfg) + ['dataset_test_pipelines']  # in the config's order
    assert open(config).readline() == (
        f'# The model of {trained_cdcl / "config.py"} with one more dataset, bdd100k, whose '
        'branches start as\n'
    )


PWNED = "__import__('os').system('touch PWNED')"


@pytest.mark.parametrize(
    'name', ["cam'o", '{{ fileDirname }}', '{{$HOME:x}}', 'trailing\\', 'x\u2028y', '道路']
)
def test_any_dataset_name_the_model_accepts_is_written_as_a_literal(
    name, trained_cdcl, tmp_path, monkeypatch
):
    """The config writer holds any name the model accepts (add_dataset_branch itself takes
    identifiers only: MMEngine's Config.pretty_text, which its Runner writes, does not)."""
    monkeypatch.chdir(tmp_path)
    new = added_dataset_cfg(Config.fromfile(str(trained_cdcl / 'config.py')), name, 'cityscapes')
    dump_config(new, 'new.py', [f'{name}\n{PWNED}'])
    loaded = Config.fromfile('new.py')
    assert loaded.to_dict() == new.to_dict()
    assert not (tmp_path / 'PWNED').exists()
    model = MODELS.build(loaded.model)
    assert model.dataset_names == ('cityscapes', 'camvid', name)
    assert model.classes_per_dataset() == (19, 11, 19)


def test_bad_input_is_refused_before_anything_is_written(trained_cdcl, data_cwd, tmp_path):
    config, ckpt = str(trained_cdcl / 'config.py'), str(trained_cdcl / 'iter_2.pth')
    out = str(tmp_path / 'out')
    empty = tmp_path / 'empty'
    empty.mkdir()
    (empty / 'notes.txt').write_text('no images here')
    with pytest.raises(ValueError, match=r'no images \(files ending in .png.*\) in .*empty'):
        add_dataset_branch(config, ckpt, 'new', str(empty), out)
    with pytest.raises(FileNotFoundError, match='image folder .*missing does not exist'):
        add_dataset_branch(config, ckpt, 'new', str(tmp_path / 'missing'), out)
    broken = tmp_path / 'broken'
    broken.mkdir()
    cv2.imwrite(str(broken / 'a.png'), np.zeros((64, 128, 3), np.uint8))
    (broken / 'b.png').write_bytes(b'not a png')
    with pytest.raises(ValueError, match=r'cannot read image .*broken/b\.png'):
        add_dataset_branch(config, ckpt, 'new', str(broken), out, source='cityscapes')
    with pytest.raises(
        ValueError,
        match=r"'camvid' is already a dataset of the model "
        r"\['cityscapes', 'camvid'\]",
    ):
        add_dataset_branch(config, ckpt, 'camvid', bdd_images(data_cwd), out)
    with pytest.raises(ValueError, match=r"source 'kitti' is not a dataset of the model"):
        add_dataset_branch(config, ckpt, 'new', bdd_images(data_cwd), out, source='kitti')
    with pytest.raises(ValueError, match=r"dataset name 'auto' is reserved"):
        add_dataset_branch(config, ckpt, 'auto', bdd_images(data_cwd), out)
    # Checked before anything is read (this config does not exist).
    for name in ("cam'o", 'class', 'ﬁsh', 'new\n__import__("os")'):
        with pytest.raises(
            ValueError,
            match=rf'dataset name {re.escape(repr(name))}: expected a Python identifier that '
            r'is not a keyword \(letters, digits and ._., e\.g\. camvid_night\): MMEngine',
        ):
            add_dataset_branch(str(tmp_path / 'missing.py'), ckpt, name, bdd_images(data_cwd), out)
    # A checkpoint of another model: other datasets, and other weights under the same names.
    other = Config.fromfile(config)
    other.model.dataset_names = ['cityscapes', 'kitti']
    other_ckpt = str(tmp_path / 'other.pth')
    torch.save(dict(state_dict=MODELS.build(other.model).state_dict()), other_ckpt)
    with pytest.raises(
        ValueError,
        match=r'other\.pth is not a checkpoint of the model of '
        r".*config\.py .*'kitti'",
    ):
        add_dataset_branch(config, other_ckpt, 'new', bdd_images(data_cwd), out)
    with mmengine_checkpoints_allowed():
        state = torch.load(ckpt, weights_only=True)
    for key in [k for k in state['state_dict'] if k.startswith('decode_head.')]:
        del state['state_dict'][key]  # in place: the state dict's metadata stays
    torch.save(state, str(tmp_path / 'headless.pth'))
    with pytest.raises(
        ValueError,
        match=r'headless\.pth is not a checkpoint of the model .*'
        r'missing keys in source state_dict: '
        r'decode_head\.conv_seg\.0\.weight, .* \.\.\.$',
    ):
        add_dataset_branch(config, str(tmp_path / 'headless.pth'), 'new', bdd_images(data_cwd), out)
    assert not osp.exists(out)
    os.makedirs(out)
    open(osp.join(out, 'new.pth'), 'w').close()
    with pytest.raises(FileExistsError, match=r'out/new\.pth exists'):
        add_dataset_branch(config, ckpt, 'new', bdd_images(data_cwd), out)
    assert os.listdir(out) == ['new.pth']


@pytest.mark.slow
def test_command_line(trained_cdcl, data_cwd, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'add_dataset_branch.py'),
            str(trained_cdcl / 'config.py'),
            str(trained_cdcl / 'iter_2.pth'),
            '--name',
            'bdd100k',
            '--images',
            bdd_images(data_cwd),
            '--from',
            'camvid',
            '--num-images',
            '4',
            '--out-dir',
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=data_cwd,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()[-3:]  # after mmengine's 'Loads checkpoint ...' lines
    assert lines[0].startswith(
        "'bdd100k' starts from 'camvid'; BN statistics re-estimated on 4 images in "
    )
    assert lines[1:] == [f'wrote {tmp_path}/bdd100k.py', f'wrote {tmp_path}/bdd100k.pth']
    meta = torch.load(str(tmp_path / 'bdd100k.pth'), weights_only=True)['meta']
    assert meta['added_branch']['source'] == 'camvid' and meta['added_branch']['num_images'] == 4
    assert meta['dataset_meta']['dataset_names'] == ['cityscapes', 'camvid', 'bdd100k']
    bad = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'add_dataset_branch.py'),
            str(trained_cdcl / 'config.py'),
            str(trained_cdcl / 'iter_2.pth'),
            '--name',
            'camvid',
            '--images',
            bdd_images(data_cwd),
            '--out-dir',
            str(tmp_path / 'x'),
        ],
        capture_output=True,
        text=True,
        cwd=data_cwd,
    )
    assert bad.returncode == 2 and "'camvid' is already a dataset" in bad.stderr
    quoted = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools', 'add_dataset_branch.py'),
            'missing.py',
            'missing.pth',
            '--name',
            "cam'o",
            '--images',
            'missing',
            '--out-dir',
            str(tmp_path / 'x'),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert quoted.returncode == 2 and quoted.stderr.splitlines()[-1] == (
        'add_dataset_branch.py: error: argument --name: dataset name "cam\'o": expected a Python '
        "identifier that is not a keyword (letters, digits and '_', e.g. camvid_night): MMEngine "
        'writes the config keys named after it unescaped when tools/train.py or tools/test.py '
        'save the config'
    )
    assert not (tmp_path / 'x').exists()
