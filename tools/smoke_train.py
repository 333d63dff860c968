"""Smoke training of the CDCL PSPNet-R18-D8 on random batches of two datasets (no data needed).

A stand-in main job until the embedded demo data lands: a few DAT steps (one batch of each
dataset, one backward of the summed loss, one SGD step), printing each dataset's loss.
"""
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmengine.structures import PixelData

import mmseg_cdcl  # noqa: F401

CONFIG = osp.join(osp.dirname(__file__), '..', 'configs', '_base_', 'models',
                  'cdcl_pspnet_r18-d8.py')


def batch(num_classes, per_dataset=2, size=128, seed=0):
    gen = torch.Generator().manual_seed(seed)
    inputs, samples = [], []
    for d, classes in enumerate(num_classes):
        for _ in range(per_dataset):
            inputs.append(torch.randint(0, 256, (3, size, size), generator=gen).float())
            sample = SegDataSample(metainfo=dict(dataset_idx=d, img_shape=(size, size)))
            label = torch.randint(0, classes, (1, size, size), generator=gen)
            sample.gt_sem_seg = PixelData(data=label)
            samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def main():
    init_default_scope('mmseg')
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG)
    cfg.model.pretrained = None  # no download: ImageNet weights are not needed for a smoke run
    cfg.model.data_preprocessor.size = (128, 128)
    model = MODELS.build(cfg.model)
    model.init_weights()
    optim = build_optim_wrapper(model, dict(
        optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4)))  # paper's SGD
    data = batch(cfg.model.decode_head.num_classes)
    for step in range(1, 4):
        log = model.train_step(data, optim)
        print(f'step {step}: ' + '  '.join(f'{k}={float(v.detach()):.4f}' for k, v in log.items()
                                           if 'loss' in k))
    print('smoke training OK')


if __name__ == '__main__':
    main()
