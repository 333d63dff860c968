"""Two-process training and evaluation on the CPU (gloo) through tools/dist_*.sh."""
import json
import os
import os.path as osp
import re
import subprocess
import sys

from mmengine.config import Config

from conftest import REPO, shrink_config


def _shell(command, cwd):
    env = dict(os.environ, PATH=f'{osp.dirname(sys.executable)}:{os.environ["PATH"]}',
               PYTHONPATH=osp.join(REPO, 'tests', 'helpers'), PORT='29533')
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def _metrics(output):
    line = [line for line in output.splitlines() if 'Iter(test)' in line and 'mIoU' in line][-1]
    return dict(re.findall(r'(\S+/mIoU|\S+/aAcc): ([\d.]+)', line))


def test_two_processes_train_disjoint_samples_and_evaluate_as_one(data_cwd, tmp_path):
    cfg = shrink_config(Config.fromfile(osp.join(REPO, 'configs', 'cdcl_cityscapes_bdd.py')),
                        max_iters=3)
    cfg.default_hooks.pop('visualization')
    cfg.custom_imports.imports.append('record_batches_hook')
    cfg.custom_hooks.append(dict(type='RecordBatchesHook', out_dir=str(tmp_path)))
    config = str(tmp_path / 'config.py')
    cfg.dump(config)
    tools = osp.join(REPO, 'tools')
    _shell(['bash', osp.join(tools, 'dist_train.sh'), config, '2', '--work-dir',
            str(tmp_path / 'ddp')], data_cwd)

    ranks = [json.load(open(tmp_path / f'rank{r}.json')) for r in range(2)]
    paths = [ranks[r]['batches'][0] for r in range(2)]  # first pass of each dataset's 6
    assert len(paths[0]) == len(paths[1]) == 4  # 2 + 2 per rank
    assert not set(paths[0]) & set(paths[1])  # disjoint samples
    assert ranks[0]['losses'] != ranks[1]['losses']  # each rank its own data...
    assert ranks[0]['weights'] == ranks[1]['weights']  # ...and the same averaged update

    checkpoint = str(tmp_path / 'ddp' / 'iter_3.pth')
    distributed = _metrics(_shell(['bash', osp.join(tools, 'dist_test.sh'), config, checkpoint,
                                   '2', '--work-dir', str(tmp_path / 'dist_test')], data_cwd))
    single = _metrics(_shell([sys.executable, osp.join(tools, 'test.py'), config, checkpoint,
                              '--work-dir', str(tmp_path / 'test')], data_cwd))
    assert set(single) == {f'{d}/{m}' for d in ('cityscapes', 'bdd100k') for m in ('mIoU', 'aAcc')}
    assert distributed == single
