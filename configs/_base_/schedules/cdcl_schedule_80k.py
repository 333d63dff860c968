# The paper's optimisation: SGD, momentum 0.9, weight decay 1e-4, lr 0.01 with poly decay
# (power 0.9), here over MMSeg's 80k-iteration schedule, with Dataset Alternation Training.
_base_ = ['mmseg::_base_/schedules/schedule_80k.py']
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4))
train_cfg = dict(type='DATTrainLoop', mode='sum')
# backend_args: checkpoints written atomically (a kill while saving leaves the previous one
# whole, for --resume), mmseg_cdcl's AtomicLocalBackend.
default_hooks = dict(
    checkpoint=dict(
        save_best='mIoU', max_keep_ckpts=2, backend_args=dict(backend='cdcl_atomic_local')
    )
)
