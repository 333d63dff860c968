# CamVid's 11 classes (SegNet's split) as the one output label space of models of Cityscapes'
# 19 classes (Cityscapes, BDD100K): many-to-one (wall -> building, truck/bus -> car, ...);
# 'train' has no CamVid class and is ignored. A model config uses it as
# model=dict(label_space=label_space); UnknownSourceMetric takes the same dict.
cityscapes_classes = ('road', 'sidewalk', 'building', 'wall', 'fence', 'pole', 'traffic light',
                      'traffic sign', 'vegetation', 'terrain', 'sky', 'person', 'rider', 'car',
                      'truck', 'bus', 'train', 'motorcycle', 'bicycle')
cityscapes_to_camvid = {
    'road': 'road', 'sidewalk': 'sidewalk', 'building': 'building', 'wall': 'building',
    'fence': 'fence', 'pole': 'pole', 'traffic light': 'sign', 'traffic sign': 'sign',
    'vegetation': 'tree', 'terrain': 'tree', 'sky': 'sky', 'person': 'pedestrian',
    'rider': 'bicyclist', 'car': 'car', 'truck': 'car', 'bus': 'car', 'train': None,
    'motorcycle': 'bicyclist', 'bicycle': 'bicyclist'}
label_space = dict(
    classes=('sky', 'building', 'pole', 'road', 'sidewalk', 'tree', 'sign', 'fence', 'car',
             'pedestrian', 'bicyclist'),
    palette=[[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
             [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
             [0, 128, 192]],
    # One target class (or None) per Cityscapes train id.
    mapping=dict(cityscapes=[cityscapes_to_camvid[c] for c in cityscapes_classes],
                 bdd100k=[cityscapes_to_camvid[c] for c in cityscapes_classes]))
