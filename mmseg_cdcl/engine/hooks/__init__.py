from .checkpoint_allow_list_hook import CheckpointAllowListHook
from .checkpoint_datasets_hook import CheckpointDatasetsHook
from .console_progress_hook import ConsoleProgressHook
from .first_iteration_time_hook import FirstIterationTimeHook
from .per_image_counts_hook import PerImageCountsHook
from .progress_bar_hook import ProgressBarHook
from .resume_hook import ResumeHook
from .rng_state_hook import RNGStateHook

__all__ = [
    'CheckpointDatasetsHook',
    'CheckpointAllowListHook',
    'ConsoleProgressHook',
    'FirstIterationTimeHook',
    'PerImageCountsHook',
    'ProgressBarHook',
    'ResumeHook',
    'RNGStateHook',
]
