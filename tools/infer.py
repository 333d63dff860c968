"""Predict images with one dataset's branch of a CDCL model, in that dataset's colours.

    python tools/infer.py CONFIG CHECKPOINT INPUT --dataset NAME --out-dir DIR [--device cpu]

INPUT is an image or a folder of images; DIR receives <image name>.png colour predictions
with the chosen dataset's palette (and label space).
"""
import argparse
import os
import os.path as osp

import cv2
import numpy as np
from mmengine.config import Config
from mmengine.utils import mkdir_or_exist
from mmseg.apis import inference_model
from mmseg.registry import DATASETS

from mmseg_cdcl.apis import init_cdcl_model

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def dataset_palette(model, cfg, name):
    """The dataset's palette: from the checkpoint's dataset_meta, else its dataset class."""
    meta = (model.dataset_meta or {}).get('datasets', {}).get(name)
    if meta is None:
        dataset_cfg = cfg.train_dataloader.dataset.datasets[name]
        meta = DATASETS.get(dataset_cfg.type).METAINFO
    return np.array(meta['palette'], dtype=np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('input', help='an image or a folder of images')
    parser.add_argument('--dataset', required=True, help="name from the config's dataset_names")
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    if osp.isdir(args.input):
        images = sorted(osp.join(args.input, f) for f in os.listdir(args.input)
                        if f.lower().endswith(IMAGE_SUFFIXES))
    elif osp.isfile(args.input):
        images = [args.input]
    else:
        parser.error(f'input {args.input} is neither an image nor a folder')
    if not images:
        parser.error(f'no image ({", ".join(IMAGE_SUFFIXES)}) in {args.input}')

    cfg = Config.fromfile(args.config)
    try:
        model = init_cdcl_model(cfg, args.checkpoint, args.dataset, device=args.device)
    except ValueError as e:
        parser.error(str(e))
    palette = dataset_palette(model, cfg, args.dataset)
    mkdir_or_exist(args.out_dir)
    for image in images:
        pred = inference_model(model, image).pred_sem_seg.data[0].cpu().numpy()
        out = osp.join(args.out_dir, osp.splitext(osp.basename(image))[0] + '.png')
        cv2.imwrite(out, palette[pred][..., ::-1])  # RGB palette, BGR file
        print(out)


if __name__ == '__main__':
    main()
