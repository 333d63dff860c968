from .dat_train_loop import DATTrainLoop, split_by_dataset

__all__ = ['DATTrainLoop', 'split_by_dataset']
