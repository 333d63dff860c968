"""Predict images with one dataset's branch of a CDCL model, in that dataset's colours.

    python tools/infer.py CONFIG CHECKPOINT INPUT --dataset NAME|auto|ensemble --out-dir DIR
                          [--device cpu]

``--dataset auto`` predicts each image with the branch its DSBN statistics choose, ``ensemble``
with all branches combined; each prediction's line then names the branch and its scores. With
the config's ``model.label_space`` the predictions are in its classes and colours.

INPUT is an image or a folder of images, searched with its sub-folders. DIR receives a colour
prediction per image, in the chosen dataset's palette (and label space): ``a/b/x.jpg`` under
INPUT is written to ``DIR/a/b/x.png``. Images of one folder that share a name but not the
extension (``x.png``, ``x.jpg``) are each written under their full name: ``x.png.png``,
``x.jpg.png``. An image that cannot be read is reported and skipped; the others are still
written, and the tool then exits with status 1 and names the skipped images.
"""

import argparse
import os
import os.path as osp
import sys
from collections import Counter

import cv2
import mmcv
import numpy as np
from mmengine.config import Config
from mmengine.utils import mkdir_or_exist
from mmseg.apis import inference_model

from mmseg_cdcl.apis import init_cdcl_model
from mmseg_cdcl.structures import resolve_space

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')


def find_images(folder, skip=None):
    """Images under ``folder`` and its sub-folders (but not ``skip``), as sorted paths
    relative to ``folder``."""
    images = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if skip is None or not osp.samefile(osp.join(root, d), skip)]
        images += [
            osp.relpath(osp.join(root, f), folder)
            for f in files
            if f.lower().endswith(IMAGE_SUFFIXES)
        ]
    return sorted(images)


def output_names(images):
    """The prediction file of each relative image path: ``<stem>.png`` in the image's folder,
    or ``<file name>.png`` when another image of that folder has the same stem."""
    stems = Counter(osp.splitext(image)[0] for image in images)
    return {
        image: (osp.splitext(image)[0] if stems[osp.splitext(image)[0]] == 1 else image) + '.png'
        for image in images
    }


def read_error(path):
    """Why ``path`` cannot be read as an image (as the test pipeline reads it); None if it
    can."""
    try:
        return None if mmcv.imread(path) is not None else 'not a decodable image'
    except OSError as e:
        return f'{type(e).__name__}: {e}'


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('input', help='an image or a folder of images (with sub-folders)')
    parser.add_argument(
        '--dataset',
        required=True,
        help="name from the config's dataset_names, or auto or ensemble for "
        'images of unknown source',
    )
    parser.add_argument('--out-dir', required=True)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    if osp.isdir(args.input):
        root = args.input
        out_dir = args.out_dir if osp.isdir(args.out_dir) else None
        images = find_images(root, skip=out_dir)  # not the predictions of an earlier run
    elif osp.isfile(args.input):
        root, images = osp.dirname(args.input), [osp.basename(args.input)]
    else:
        parser.error(f'input {args.input} is neither an image nor a folder')
    if not images:
        parser.error(f'no image ({", ".join(IMAGE_SUFFIXES)}) in {args.input} or its sub-folders')
    outputs = output_names(images)
    clashes = [out for out, n in Counter(outputs.values()).items() if n > 1]
    if clashes:  # e.g. x.jpg.png next to x.jpg and x.png
        parser.error(f'images would share prediction files {clashes}: rename them')

    cfg = Config.fromfile(args.config)
    try:
        model = init_cdcl_model(cfg, args.checkpoint, args.dataset, device=args.device)
    except ValueError as e:
        parser.error(str(e))
    skipped = []
    for image in images:
        path = osp.join(root, image)
        try:
            result = inference_model(model, path)
            pred = result.pred_sem_seg.data[0].cpu().numpy()
        except Exception:
            reason = read_error(path)
            if reason is None:  # the image reads: a real failure, which stops the run
                raise
            print(f'skipped {path}: {reason}', file=sys.stderr)
            skipped.append(path)
            continue
        out = osp.join(args.out_dir, outputs[image])
        mkdir_or_exist(osp.dirname(out))
        # the colours of the prediction's space (auto: the chosen dataset's)
        space = resolve_space(result, model.dataset_meta)
        colours = np.array(space['palette'], dtype=np.uint8)
        cv2.imwrite(out, colours[pred][..., ::-1])  # RGB palette, BGR file
        scores = result.metainfo.get('dataset_scores')
        print(
            out
            if scores is None
            else f'{out}: {result.metainfo["dataset_name"]} ('
            + ', '.join(f'{name} {score:.2f}' for name, score in scores.items())
            + ')'
        )
    if skipped:
        sys.exit(
            f'{len(images) - len(skipped)} of {len(images)} images predicted in '
            f'{args.out_dir}; {len(skipped)} could not be read and were skipped: '
            f'{", ".join(skipped)}'
        )


if __name__ == '__main__':
    main()
