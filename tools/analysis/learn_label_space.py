"""A label space learned from a CDCL model's per-dataset heads, after training.

    python tools/analysis/learn_label_space.py CONFIG CHECKPOINT --out FILE.py
        [--dataloader {val,test}] [--bn {image,head}] [--max-images N] [--compare FILE.py]
        [--inside 0.6] [--confirm 0.05] [--overlap 0.2] [--device cpu]

Every dataset's head predicts every dataset's labelled images (with the image's DSBN branch and
with the head's); the relations of the classes read from these confusions give a label space,
written to FILE.py in the shipped form (model=dict(label_space=label_space)), with the evidence
in FILE.json. Prints the relations and the mIoU of each dataset in its own classes and in the
learned space (and in --compare's). The command line of
:func:`mmseg_cdcl.evaluation.learn_label_space`, which says what is measured.
"""

import argparse
import os.path as osp
import warnings

# mmengine resolves `mmseg::` config paths with setuptools' pkg_resources, which warns each time.
warnings.filterwarnings(
    'ignore', message='pkg_resources is deprecated as an API', category=UserWarning
)
# MMSeg's notices at every model build, about loss settings that do not matter here.
for notice in (r'``build_loss`` would be deprecated soon', r'Default ``avg_non_ignore`` is False'):
    warnings.filterwarnings('ignore', message=notice, category=UserWarning)

from mmseg_cdcl.evaluation import learn_label_space  # noqa: E402
from mmseg_cdcl.evaluation.functional.class_relations import THRESHOLDS  # noqa: E402
from mmseg_cdcl.evaluation.label_space_learning import relations_table  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help="the CDCL model's config")
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument('--out', required=True, help='the label space file to write (.py)')
    parser.add_argument(
        '--dataloader',
        choices=('val', 'test'),
        default='val',
        help="the config's dataloader whose labelled images are predicted",
    )
    parser.add_argument(
        '--bn',
        choices=('image', 'head'),
        default='image',
        help='whose DSBN branch the deciding confusions used (both are saved)',
    )
    parser.add_argument('--max-images', type=int, help='images per dataset (default: all)')
    parser.add_argument(
        '--compare',
        help='a label space file to compare with, e.g. '
        'configs/_base_/label_spaces/cityscapes_to_camvid.py',
    )
    for name, value in THRESHOLDS.items():
        parser.add_argument(
            f'--{name}',
            type=float,
            default=value,
            help=f"class_relations' {name} (default {value})",
        )
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()
    try:
        summary = learn_label_space(
            args.config,
            args.checkpoint,
            args.out,
            args.dataloader,
            args.bn,
            args.max_images,
            args.compare,
            args.device,
            **{name: getattr(args, name) for name in THRESHOLDS},
        )
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    print('\n'.join(relations_table(summary)))
    finer = summary['finer']
    if finer is None:
        print(
            'neither taxonomy is coarser: the label space groups related classes; '
            'universal classes: ' + ', '.join(summary['universal'])
        )
    else:
        coarse = next(name for name in summary['images'] if name != finer)
        print(f"{finer}'s classes map into {coarse}'s")
    other = next(choice for choice in summary['mapping_by_bn'] if choice != summary['bn'])
    changed = [
        f'{name}.{cls}: {ours} -> {theirs}'
        for name in summary['classes']
        for cls, ours, theirs in zip(
            summary['classes'][name],
            summary['mapping_by_bn'][summary['bn']][name],
            summary['mapping_by_bn'][other][name],
        )
        if ours != theirs
    ]
    print(
        f'with --bn {other}: '
        + (
            'the same mapping'
            if not changed
            else f'{len(changed)} classes map otherwise: ' + ', '.join(changed)
        )
    )
    spaces = [s for s in ('own', 'learned', 'compare') if s in next(iter(summary['miou'].values()))]
    print(
        "mIoU (%) of each dataset's own branch (share of its labelled pixels kept): "
        + '; '.join(
            f'{name} '
            + ', '.join(
                f'{s} {m[s]:.2f}' + (f' ({summary["kept"][name][s]:.0%})' if s != 'own' else '')
                for s in spaces
            )
            for name, m in summary['miou'].items()
        )
    )
    print(f'wrote {args.out} (evidence: {osp.splitext(args.out)[0] + ".json"})')


if __name__ == '__main__':
    main()
