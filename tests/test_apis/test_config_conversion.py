"""mmseg_cdcl.apis.convert_config in-process: a stock MMSeg config and dataset configs become
one CDCL config (tests/test_tools/test_convert_config.py, a name pytest allows once, trains the
result per model family and runs the command line)."""

import ast
import os.path as osp

import pytest
from mmengine.config import Config

from conftest import REPO
from mmseg_cdcl.apis import config_source, convert_config
from mmseg_cdcl.utils import load_config
from mmseg_cdcl.utils.config_literals import comment

STOCK = 'mmseg::pspnet/pspnet_r18-d8_4xb2-80k_cityscapes-512x1024.py'
DATASETS = dict(
    cityscapes='mmseg::_base_/datasets/cityscapes.py',
    camvid=osp.join(REPO, 'configs', '_base_', 'datasets', 'camvid.py'),
)


def test_converted_config_is_cdcl_over_the_datasets_and_keeps_the_stock_rest():
    cfg = convert_config(STOCK, DATASETS, batch_sizes=dict(camvid=4))
    assert isinstance(cfg, Config)
    assert (cfg.model.type, cfg.model.dataset_names, cfg.model.num_classes) == (
        'CDCLEncoderDecoder',
        ['cityscapes', 'camvid'],
        [19, 11],
    )
    assert cfg.train_cfg.type == 'DATTrainLoop' and cfg.train_cfg.max_iters == 80000
    # the stock batch size (2) unless given; each dataset's pipeline cropping to the stock size
    assert cfg.train_dataloader.batch_sampler.batch_sizes == dict(cityscapes=2, camvid=4)
    crops = [
        t.crop_size
        for d in cfg.train_dataloader.dataset.datasets.values()
        for t in d.pipeline
        if t.type == 'RandomCrop'
    ]
    assert crops == [(512, 1024), (512, 1024)]
    assert cfg.val_evaluator.type == 'MultiDatasetIoUMetric'
    assert cfg.optim_wrapper.optimizer.lr == 0.01  # inherited: PSPNet's SGD
    # --tta: each dataset's views from its dataset config, merged by CDCLTTAModel
    assert cfg.tta_model.type == 'CDCLTTAModel'
    assert cfg.tta_pipeline.to_dict() == {
        name: load_config(path).tta_pipeline for name, path in DATASETS.items()
    }
    assert cfg.tta_pipeline.camvid[1].transforms[0][0] == dict(
        type='Resize', scale_factor=0.5, keep_ratio=True
    )
    # ``text`` is the source the tool writes, inheriting the stock config as named
    assert cfg.text == config_source(STOCK, DATASETS, dict(camvid=4))
    assert f"_base_ = ['{STOCK}']" in cfg.text


def test_a_relative_stock_path_loads_and_stays_relative_in_the_text(tmp_path, monkeypatch):
    (tmp_path / 'stock.py').write_text(f"_base_ = ['{STOCK}']\n")
    monkeypatch.chdir(tmp_path)
    cfg = convert_config('stock.py', DATASETS)
    assert cfg.model.decode_head.type == 'PSPHead' and cfg.model.num_classes == [19, 11]
    assert "_base_ = ['stock.py']" in cfg.text


@pytest.mark.parametrize(
    'kwargs, error, match',
    [
        (
            dict(datasets={'city scapes': DATASETS['cityscapes'], 'camvid': DATASETS['camvid']}),
            ValueError,
            r"dataset name 'city scapes': expected a Python identifier",
        ),
        (
            dict(batch_sizes=dict(bdd100k=2)),
            ValueError,
            r"--batch-size names \['bdd100k'\], not among the datasets \['cityscapes', 'camvid'\]",
        ),
        (
            dict(datasets=dict(DATASETS, psp='mmseg::_base_/models/pspnet_r50-d8.py')),
            ValueError,
            r'pspnet_r50-d8.py \(dataset psp\) has no train_dataloader.dataset',
        ),
        (dict(stock='missing.py'), FileNotFoundError, r'no config file missing.py'),
    ],
)
def test_errors_name_the_offending_value(kwargs, error, match):
    args = {**dict(stock=STOCK, datasets=DATASETS, batch_sizes=None), **kwargs}
    with pytest.raises(error, match=match):
        convert_config(**args)


def test_an_epoch_based_stock_config_is_refused(tmp_path):
    stock = tmp_path / 'by_epoch.py'
    stock.write_text(
        f"_base_ = ['{STOCK}']\n"
        "train_cfg = dict(_delete_=True, type='EpochBasedTrainLoop', max_epochs=2)\n"
    )
    with pytest.raises(ValueError, match=r'trains by epochs; DATTrainLoop counts iterations'):
        convert_config(str(stock), DATASETS)


def test_hostile_paths_and_strings_are_written_as_literals(tmp_path, monkeypatch):
    """Paths from the command line and strings of the dataset configs reach the written source
    as literals (comments: one line each): nothing in them runs or changes on loading."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "{{ fileDirname }}\n__import__('os').system('touch PWNED')"
    folder.mkdir()
    stock = folder / 'stock.py'
    stock.write_text(f"_base_ = ['{STOCK}']\n")
    camvid = folder / "camvid'{{_base_.x}}.py"
    camvid.write_text(
        f'_base_ = [{DATASETS["camvid"]!r}]\n'
        r"train_dataloader = dict(dataset=dict(data_root='\x7b\x7b fileDirname }}\\camvid'))"
        '\n'
    )
    datasets = dict(cityscapes=DATASETS['cityscapes'], camvid=str(camvid))
    cfg = convert_config(str(stock), datasets)
    assert cfg.model.num_classes == [19, 11]
    assert cfg.train_dataloader.dataset.datasets.camvid.data_root == '{{ fileDirname }}\\camvid'
    statements = ast.parse(cfg.text).body
    assert [type(s) for s in statements] == [ast.Assign] * len(statements)
    assert ast.literal_eval(statements[0].value) == [str(stock)]  # _base_, as given
    comments = [line for line in cfg.text.splitlines() if line.startswith('#')]
    assert comment(f'  camvid: {camvid}') in comments
    written = tmp_path / 'cdcl.py'
    written.write_text(cfg.text, encoding='utf-8')
    assert Config.fromfile(str(written)).to_dict() == cfg.to_dict()
    assert not (tmp_path / 'PWNED').exists()
