"""Export one dataset's branch of a CDCL checkpoint as a plain MMSeg model.

    python tools/export_single_dataset.py CONFIG CHECKPOINT --dataset NAME --out-dir DIR

writes DIR/NAME.py and DIR/NAME.pth, which stock MMSeg loads (mmseg.apis.init_model) without
mmseg_cdcl and which predict as the CDCL model does on that dataset, at the plain model's cost.
"""

import argparse

from mmseg_cdcl.apis import export_single_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='CDCL config file')
    parser.add_argument('checkpoint', help='CDCL checkpoint')
    parser.add_argument('--dataset', required=True, help="name from the config's dataset_names")
    parser.add_argument('--out-dir', required=True, help='folder for the plain config/checkpoint')
    args = parser.parse_args()
    try:
        config, checkpoint = export_single_dataset(
            args.config, args.checkpoint, args.dataset, args.out_dir
        )
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    print(f'wrote {config}\nwrote {checkpoint}')


if __name__ == '__main__':
    main()
