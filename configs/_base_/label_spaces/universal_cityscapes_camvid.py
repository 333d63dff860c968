# Cityscapes' 19 classes as the universal classes of Cityscapes + CamVid, for a model whose one
# classifier predicts them (model=dict(label_space=label_space, universal_head=True)): each
# CamVid class is the union of the Cityscapes classes that the hand-written
# cityscapes_to_camvid.py maps to it (tree = vegetation + terrain, car = car + truck + bus, ...),
# derived from that file's dict here so that the two cannot disagree. CamVid labels no train:
# its pixels count as the rest of a CamVid image (docs/universal_label_space.md).
_base_ = []  # a classic config: mmengine reads one that imports without _base_ as a lazy one
import mmengine.config  # noqa: E402

__hand_written = mmengine.config.Config.fromfile('{{ fileDirname }}/cityscapes_to_camvid.py')
__camvid_classes = __hand_written.label_space.classes
label_space = dict(
    classes=__hand_written.cityscapes_classes,
    # Cityscapes' own colours (CityscapesDataset's METAINFO).
    palette=[
        [128, 64, 128],
        [244, 35, 232],
        [70, 70, 70],
        [102, 102, 156],
        [190, 153, 153],
        [153, 153, 153],
        [250, 170, 30],
        [220, 220, 0],
        [107, 142, 35],
        [152, 251, 152],
        [70, 130, 180],
        [220, 20, 60],
        [255, 0, 0],
        [0, 0, 142],
        [0, 0, 70],
        [0, 60, 100],
        [0, 80, 100],
        [0, 0, 230],
        [119, 11, 32],
    ],
    mapping=dict(
        # one universal class per class: the same classes
        cityscapes=list(__hand_written.cityscapes_classes),
        # by CamVid class id: the Cityscapes classes mapped to it
        camvid=[
            [c for c, t in __hand_written.cityscapes_to_camvid.items() if t == camvid]
            for camvid in __camvid_classes
        ],
    ),
)
# The same 19 classes for a model of per-dataset heads (auto and ensemble in one space), which
# cannot split a CamVid class's probability among several classes: each CamVid class goes to the
# one Cityscapes class of its union that most of its pixels are in the generated CamVid training
# images (docs/universal_label_space.md); that branch never predicts the union's others.
__most_pixels = dict(building='building', tree='vegetation', sign='traffic sign', car='car')
__most_pixels.update(bicyclist='bicycle')
representative_label_space = dict(
    classes=label_space['classes'],
    palette=label_space['palette'],
    mapping=dict(
        cityscapes=label_space['mapping']['cityscapes'],
        camvid=[
            union[0] if len(union) == 1 else __most_pixels[camvid]
            for camvid, union in zip(__camvid_classes, label_space['mapping']['camvid'])
        ],
    ),
)
