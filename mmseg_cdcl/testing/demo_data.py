"""Procedural street scenes in the on-disk formats of Cityscapes, BDD100K and CamVid.

CDCL's demo trains one model on datasets whose images differ in their statistics. Each scene
is one semantic layout (sky, facades, trees, a road in perspective, sidewalks, terrain, poles
with signs and lights, fences, walls, vehicles, pedestrians, cyclists) in Cityscapes' 19 train
ids; Cityscapes and BDD100K store it as is, CamVid through ``CITYSCAPES_TO_CAMVID``. The image
is rendered in the dataset's style: illumination, colour cast, contrast, blur, noise, JPEG,
camera height and focal length, class frequencies. ``shift`` moves every style from
``NEUTRAL_STYLE`` (0: all datasets alike) to ``DEFAULT_STYLES`` (1).

Example:
    >>> from mmseg_cdcl.testing import make_demo_data
    >>> make_demo_data('data/demo')['camvid']['splits']['train']['img_path']
    'images/train'

``tools/make_demo_data.py`` is its command line.
"""

import hashlib
import os
import os.path as osp
import shutil

import cv2
import numpy as np
from mmengine.config import Config
from mmseg.datasets import CityscapesDataset

from mmseg_cdcl.utils import config_path

CLASSES = tuple(CityscapesDataset.METAINFO['classes'])  # the train ids' names, in order
(
    ROAD,
    SIDEWALK,
    BUILDING,
    WALL,
    FENCE,
    POLE,
    LIGHT,
    SIGN,
    VEGETATION,
    TERRAIN,
    SKY,
    PERSON,
    RIDER,
    CAR,
    TRUCK,
    BUS,
    TRAIN,
    MOTORCYCLE,
    BICYCLE,
) = range(19)
IGNORE = 255
# SegNet's 11 CamVid classes are coarser; CamVid's own 'Train' is void in them. The mapping is
# the shipped label space's, so that generated CamVid labels are what it makes of predictions.
_LABEL_SPACE = Config.fromfile(config_path('_base_/label_spaces/cityscapes_to_camvid.py'))
CAMVID_CLASSES = tuple(_LABEL_SPACE.label_space['classes'])
CITYSCAPES_TO_CAMVID = dict(_LABEL_SPACE.cityscapes_to_camvid)
CAMVID_LUT = np.full(256, IGNORE, np.uint8)  # Cityscapes train id -> CamVid class index
CAMVID_LUT[:19] = [
    IGNORE if CITYSCAPES_TO_CAMVID[c] is None else CAMVID_CLASSES.index(CITYSCAPES_TO_CAMVID[c])
    for c in CLASSES
]

NEUTRAL_STYLE = dict(  # daylight; hood: height of the unlabelled ego-vehicle bonnet
    brightness=1.0,
    gains=(1.0, 1.0, 1.0),
    contrast=1.0,
    blur=0.0,
    noise=3.0,
    jpeg_quality=95,
    object_scale=1.0,
    horizon=0.42,
    hood=0.08,
    class_weights={},
)
DEFAULT_STYLES = {
    'cityscapes': dict(NEUTRAL_STYLE),
    # Dashcam at dusk: dark, bluish, contrasty, noisy, compressed; wide angle, busy roads.
    'bdd100k': dict(
        brightness=0.62,
        gains=(0.85, 0.95, 1.2),
        contrast=1.35,
        blur=0.0,
        noise=10.0,
        jpeg_quality=70,
        object_scale=0.85,
        horizon=0.5,
        hood=0.12,
        class_weights=dict(car=2.5, truck=1.5, bus=1.5, vegetation=0.5, person=0.7),
    ),
    # Camcorder in warm evening light: flat and soft; longer focal length, leafy suburbs.
    'camvid': dict(
        brightness=1.08,
        gains=(1.15, 1.0, 0.78),
        contrast=0.7,
        blur=1.0,
        noise=2.0,
        jpeg_quality=95,
        object_scale=1.25,
        horizon=0.38,
        hood=0.0,
        class_weights=dict(vegetation=1.8, terrain=1.5, car=0.7, pole=1.3, fence=1.5),
    ),
}
# Splits and their data_prefix (img_path, seg_map_path), as MMSeg's dataset classes read them.
LAYOUTS = {
    'cityscapes': (('train', 'val'), 'leftImg8bit/{}', 'gtFine/{}'),
    'bdd100k': (('train', 'val'), 'images/10k/{}', 'labels/sem_seg/masks/{}'),
    'camvid': (('train', 'val', 'test'), 'images/{}', 'annotations/{}'),
}
# Each image's scene in Cityscapes' 19 train ids, beside any dataset's own labels (on request).
UNIVERSAL_PREFIX = 'universal_annotations/{}'
DEFAULT_NUM_IMAGES = {'train': 24, 'val': 8, 'test': 8}  # a 2-core CPU demo
DEFAULT_SIZES = {'cityscapes': (128, 256), 'bdd100k': (128, 256), 'camvid': (96, 128)}
CITIES = {'train': ('aachen', 'bremen'), 'val': ('frankfurt', 'lindau')}
CAMVID_SEQUENCES = {
    'train': ('0001TP_{:06d}', '0006R0_f{:05d}'),
    'val': ('0016E5_{:05d}',),
    'test': ('Seq05VD_f{:05d}',),
}
# Each image features one rare class, so every class shows up within a couple dozen images.
FEATURED = (TRAIN, BUS, TRUCK, MOTORCYCLE, BICYCLE, WALL, LIGHT, FENCE)

# Base colours (RGB), overlapping on purpose (grey sky/road/wall/pole, green trees/terrain/
# fences, white marks/cars/signs) so that no single pixel colour gives the class away.
PALETTES = {
    'sky': [(110, 160, 220), (150, 185, 225), (175, 180, 185)],
    BUILDING: [
        (180, 170, 150),
        (150, 140, 130),
        (160, 90, 70),
        (200, 195, 185),
        (120, 110, 100),
        (190, 160, 120),
    ],
    WALL: [(170, 165, 155), (140, 135, 125), (185, 175, 150)],
    ROAD: [(85, 85, 90), (100, 98, 95), (70, 72, 78)],
    'mark': [(220, 220, 210), (210, 180, 60)],
    SIDEWALK: [(160, 150, 148), (180, 170, 160), (160, 120, 120)],
    TERRAIN: [(120, 130, 70), (140, 120, 80), (100, 120, 60)],
    VEGETATION: [(60, 100, 40), (80, 120, 50), (50, 80, 40), (90, 110, 60)],
    FENCE: [(110, 100, 90), (150, 150, 150), (90, 110, 80)],
    POLE: [(110, 110, 110), (70, 70, 70), (140, 140, 130)],
    SIGN: [(200, 40, 40), (40, 70, 180), (220, 190, 40), (220, 220, 220)],
    'lamp': [(230, 60, 40), (240, 200, 40), (60, 220, 120)],
    'vehicle': [
        (200, 200, 205),
        (30, 30, 35),
        (150, 20, 25),
        (40, 60, 120),
        (120, 120, 125),
        (220, 220, 220),
        (70, 90, 70),
        (200, 170, 40),
    ],
    'clothes': [(40, 40, 50), (60, 70, 110), (150, 40, 40), (200, 200, 190), (90, 80, 60)],
    'skin': [(220, 180, 150), (140, 100, 80), (190, 150, 120)],
    'dark': [(35, 38, 45), (25, 25, 28)],
}
# Texture amplitude per class: (smooth blotches, per-pixel grain), relative to the colour.
TEXTURE = np.full((256, 2), 0.03, np.float32)
TEXTURE[[ROAD, SIDEWALK, BUILDING, WALL, VEGETATION, TERRAIN, SKY]] = [
    (0.06, 0.09),
    (0.05, 0.05),
    (0.10, 0.04),
    (0.08, 0.06),
    (0.25, 0.20),
    (0.15, 0.15),
    (0.05, 0.01),
]


def _jitter(rng, palette):
    """A palette colour with per-object brightness and tint variation."""
    colour = np.asarray(palette[rng.integers(len(palette))], np.float64)
    return tuple(np.clip(colour * rng.uniform(0.85, 1.15) + rng.normal(0, 8, 3), 0, 255))


class _Canvas:
    """Label and instance maps painted back to front; each instance has a colour and a
    pattern ``(period_x, period_y, darkening, vertical_gradient)`` (windows, slats, tiles)."""

    def __init__(self, h, w):
        self.h, self.w = h, w
        self.label = np.full((h, w), SKY, np.uint8)
        self.inst = np.zeros((h, w), np.int32)
        self.shade = np.ones((h, w), np.float32)  # cast shadows change pixels, not labels
        self.colours, self.patterns = [], []

    def _new(self, colour, pattern):
        self.colours.append(colour)
        self.patterns.append(pattern or (0, 0, 0.0, 0.0))
        return len(self.colours) - 1

    def poly(self, pts, cls, colour, pattern=None):
        pts = [np.round(np.asarray(pts, np.float64)).astype(np.int32)]
        cv2.fillPoly(self.label, pts, int(cls))
        cv2.fillPoly(self.inst, pts, self._new(colour, pattern))

    def rect(self, x0, y0, x1, y1, cls, colour, pattern=None):
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], cls, colour, pattern)

    def ellipse(self, cx, cy, ax, ay, cls, colour, thickness=-1):
        args = ((round(cx), round(cy)), (max(1, round(ax)), max(1, round(ay))), 0, 0, 360)
        cv2.ellipse(self.label, *args, int(cls), thickness)
        cv2.ellipse(self.inst, *args, self._new(colour, None), thickness)

    def line(self, p0, p1, cls, colour, thickness):
        args = (tuple(np.round(p0).astype(int)), tuple(np.round(p1).astype(int)))
        cv2.line(self.label, *args, int(cls), max(1, round(thickness)))
        cv2.line(self.inst, *args, self._new(colour, None), max(1, round(thickness)))

    def shadow(self, pts, strength):
        cv2.fillPoly(self.shade, [np.round(pts).astype(np.int32)], float(1 - strength))


class _Street:
    """The camera's view of a straight street. Depth ``d`` runs from 0 at the horizon to 1 at
    the image bottom; lateral ``u`` is in road half-widths (±1: the road's edges)."""

    def __init__(self, rng, h, w, style):
        self.h, self.w = h, w
        self.yh = h * np.clip(style['horizon'] + rng.uniform(-0.04, 0.04), 0.15, 0.8)
        self.xv = w * (0.5 + rng.uniform(-0.1, 0.1))  # vanishing point
        self.offset = w * rng.uniform(-0.12, 0.12)
        self.half_width = w * rng.uniform(0.3, 0.45)
        self.sidewalk = [rng.uniform(0.25, 0.5) * (rng.random() < 0.85) for _ in range(2)]
        self.verge = [rng.uniform(0.3, 0.8) for _ in range(2)]
        self.unit = h * style['object_scale']  # object size at d = 1: the focal length

    def y(self, d):
        return self.yh + d * (self.h - self.yh)

    def x(self, d, u):
        return self.xv + d * (self.offset + u * self.half_width)

    def curb(self, side, extra=0.0):
        """``u`` of the outer edge of the sidewalk on ``side`` (0 left, 1 right), plus extra."""
        return (-1, 1)[side] * (1 + self.sidewalk[side] + extra)

    def strip(self, u0, u1):
        return [
            (self.x(0, u0), self.yh),
            (self.x(0, u1), self.yh),
            (self.x(1, u1), self.h),
            (self.x(1, u0), self.h),
        ]


def _draw_background(cv, rng, st, weights):
    """Sky, distant terrain, and facades with windows or tree lines along the skyline."""
    cv.rect(0, 0, cv.w, cv.h, SKY, _jitter(rng, PALETTES['sky']), (0, 0, 0.0, 0.5))
    cv.rect(0, st.yh, cv.w, cv.h, TERRAIN, _jitter(rng, PALETTES[TERRAIN]))
    x = -rng.uniform(0, 0.1) * cv.w
    while x < cv.w:
        bw = cv.w * rng.uniform(0.08, 0.22)
        top = st.yh - cv.h * (0.05 + abs(x + bw / 2 - st.xv) / cv.w * rng.uniform(0.4, 1.3))
        if rng.random() < 0.2 * weights[VEGETATION]:
            for _ in range(3):
                cv.ellipse(
                    x + rng.uniform(0, bw),
                    st.yh,
                    bw * rng.uniform(0.3, 0.6),
                    st.yh - top,
                    VEGETATION,
                    _jitter(rng, PALETTES[VEGETATION]),
                )
        elif rng.random() < 0.9:
            period = max(3, round(cv.h * rng.uniform(0.03, 0.06)))
            cv.rect(
                x,
                top,
                x + bw,
                cv.h,
                BUILDING,
                _jitter(rng, PALETTES[BUILDING]),
                (period, period + 1, rng.uniform(0.3, 0.6), 0.2),
            )
        x += bw


def _draw_ground(cv, rng, st):
    """Verges, sidewalks, the road with dashed lane marks, and a cast shadow."""
    for side in (0, 1):
        cv.poly(
            st.strip(st.curb(side), st.curb(side, st.verge[side])),
            TERRAIN,
            _jitter(rng, PALETTES[TERRAIN]),
        )
        if st.sidewalk[side]:
            tile = max(3, round(cv.h * 0.05))
            cv.poly(
                st.strip((-1, 1)[side], st.curb(side)),
                SIDEWALK,
                _jitter(rng, PALETTES[SIDEWALK]),
                (tile, tile, 0.15, 0.0),
            )
    cv.poly(st.strip(-1, 1), ROAD, _jitter(rng, PALETTES[ROAD]), (0, 0, 0.0, -0.2))
    mark = _jitter(rng, PALETTES['mark'])
    for d0 in np.arange(rng.uniform(0.05, 0.15), 1.0, 0.2):
        d1 = d0 + 0.08
        cv.poly(
            [
                (st.x(d0, -0.03), st.y(d0)),
                (st.x(d0, 0.03), st.y(d0)),
                (st.x(d1, 0.03), st.y(d1)),
                (st.x(d1, -0.03), st.y(d1)),
            ],
            ROAD,
            mark,
        )
    if rng.random() < 0.5:
        xs = cv.w * rng.uniform(0.1, 0.9)
        cv.shadow([(0, cv.h), (xs, st.yh + 2), (xs + cv.w * 0.2, st.yh + 2), (0, cv.h * 0.7)], 0.3)


def _vehicle(cv, rng, st, d, u, cls):
    """A car, truck, bus or tram from behind (cars also sideways), with its shadow."""
    s, x, y = st.unit * d, st.x(d, u), st.y(d)
    w, h = {CAR: (0.5, 0.42), TRUCK: (0.7, 0.75), BUS: (0.65, 0.8), TRAIN: (0.75, 0.9)}[cls]
    w *= s * (rng.uniform(1.5, 2.0) if cls == CAR and rng.random() < 0.25 else 1.0)
    h *= s
    colour, dark = _jitter(rng, PALETTES['vehicle']), _jitter(rng, PALETTES['dark'])
    cv.shadow(
        [
            (x - w * 0.6, y + 1),
            (x + w * 0.6, y + 1),
            (x + w * 0.5, y - h * 0.1),
            (x - w * 0.5, y - h * 0.1),
        ],
        0.45,
    )
    for wx in (x - w * 0.38, x + w * 0.38):  # wheels
        cv.rect(wx - w * 0.1, y - h * 0.2, wx + w * 0.1, y, cls, dark)
    if cls == CAR:
        cv.rect(x - w / 2, y - h * 0.6, x + w / 2, y - h * 0.12, cls, colour, (0, 0, 0, 0.4))
        cv.poly(
            [
                (x - w * 0.42, y - h * 0.6),
                (x - w * 0.32, y - h),
                (x + w * 0.32, y - h),
                (x + w * 0.42, y - h * 0.6),
            ],
            cls,
            colour,
        )
        cv.poly(
            [
                (x - w * 0.36, y - h * 0.62),
                (x - w * 0.3, y - h * 0.92),
                (x + w * 0.3, y - h * 0.92),
                (x + w * 0.36, y - h * 0.62),
            ],
            cls,
            dark,
        )
        for lx in (x - w * 0.45, x + w * 0.38):  # tail lights
            cv.rect(lx, y - h * 0.5, lx + w * 0.07, y - h * 0.4, cls, (200, 30, 30))
    else:
        cv.rect(x - w / 2, y - h, x + w / 2, y - h * 0.12, cls, colour, (0, 0, 0, 0.3))
        cv.rect(
            x - w * 0.45,
            y - h * 0.9,
            x + w * 0.45,
            y - h * 0.65,
            cls,
            dark,
            (max(3, round(s * 0.15)), 0, 0.4, 0),
        )


def _person(cv, rng, st, d, u, cls=PERSON, seated=False):
    """A pedestrian, or a seated rider whose legs the bike hides."""
    s, x, y = st.unit * d, st.x(d, u), st.y(d) - (st.unit * d * 0.18 if seated else 0)
    h = s * rng.uniform(0.45, 0.58) * (0.75 if seated else 1.0)
    w = h * 0.28
    if not seated:
        legs = _jitter(rng, PALETTES['clothes'])
        cv.rect(x - w * 0.4, y - h * 0.45, x - w * 0.05, y, cls, legs)
        cv.rect(x + w * 0.05, y - h * 0.45, x + w * 0.4, y, cls, legs)
    cv.rect(
        x - w / 2, y - h * 0.82, x + w / 2, y - h * 0.42, cls, _jitter(rng, PALETTES['clothes'])
    )
    cv.ellipse(x, y - h * 0.9, w * 0.32, h * 0.09, cls, _jitter(rng, PALETTES['skin']))


def _cyclist(cv, rng, st, d, u, cls):
    """A bicycle or motorcycle from the side, with its rider."""
    s, x, y = st.unit * d, st.x(d, u), st.y(d)
    r, moto = s * 0.1, cls == MOTORCYCLE
    colour = _jitter(rng, PALETTES['dark' if moto else 'vehicle'])
    for wx in (x - r * 1.6, x + r * 1.6):
        cv.ellipse(wx, y - r, r, r, cls, (30, 30, 30), -1 if moto else max(1, round(r / 4)))
    if moto:
        cv.rect(x - r * 1.4, y - r * 2.2, x + r * 1.4, y - r, cls, colour)
    else:
        cv.line((x - r * 1.6, y - r), (x, y - r * 2.3), cls, colour, r / 4)
        cv.line((x, y - r * 2.3), (x + r * 1.6, y - r), cls, colour, r / 4)
    _person(cv, rng, st, d, u, RIDER, seated=True)


def _pole(cv, rng, st, d, u, cls):
    """A pole carrying a traffic sign (cls SIGN), a traffic light (LIGHT) or a lamp (POLE)."""
    s, x, y = st.unit * d, st.x(d, u), st.y(d)
    w, top = max(1.0, s * 0.025), y - s * rng.uniform(0.9, 1.3)
    cv.rect(x - w / 2, top, x + w / 2, y, POLE, _jitter(rng, PALETTES[POLE]))
    r = s * 0.07
    if cls == SIGN and rng.random() < 0.5:
        cv.ellipse(x, top, r, r, SIGN, _jitter(rng, PALETTES[SIGN]))
    elif cls == SIGN:
        cv.rect(x - r, top - r * 0.8, x + r, top + r * 0.8, SIGN, _jitter(rng, PALETTES[SIGN]))
    elif cls == LIGHT:
        cv.rect(x - r * 0.7, top - r * 2.1, x + r * 0.7, top, LIGHT, _jitter(rng, PALETTES['dark']))
        lit = rng.integers(3)
        cv.ellipse(x, top - r * (1.75 - 0.7 * lit), r * 0.42, r * 0.3, LIGHT, PALETTES['lamp'][lit])


def _tree(cv, rng, st, d, u, cls):
    s, x, y = st.unit * d, st.x(d, u), st.y(d)
    cv.rect(x - s * 0.025, y - s * 0.55, x + s * 0.025, y, VEGETATION, (80, 60, 40))
    cv.ellipse(
        x,
        y - s * 0.75,
        s * rng.uniform(0.18, 0.32),
        s * rng.uniform(0.25, 0.4),
        VEGETATION,
        _jitter(rng, PALETTES[VEGETATION]),
    )


def _barrier(cv, rng, st, d, u, cls):
    """A fence (slats) or wall (solid) along the verge, from depth d towards the camera."""
    d1, hgt = min(1.0, d + rng.uniform(0.15, 0.4)), 0.28 if cls == FENCE else 0.38
    slats = (max(2, round(st.unit * d * 0.04)), 0, 0.5, 0.0) if cls == FENCE else None
    cv.poly(
        [
            (st.x(d, u), st.y(d)),
            (st.x(d1, u), st.y(d1)),
            (st.x(d1, u), st.y(d1) - st.unit * d1 * hgt),
            (st.x(d, u), st.y(d) - st.unit * d * hgt),
        ],
        cls,
        _jitter(rng, PALETTES[cls]),
        slats,
    )


def _lateral(rng, st, place):
    """Lateral position ``u`` of an object standing at ``place``, on a random side."""
    side = rng.integers(2)
    if place == 'road':
        return rng.uniform(-0.85, 0.85)
    if place == 'tram':
        return rng.uniform(-0.3, 0.3)
    if place == 'road edge':
        return (-1, 1)[side] * rng.uniform(0.6, 0.9)
    if place == 'sidewalk':
        return st.curb(side, -rng.uniform(0.1, 0.9) * st.sidewalk[side])
    if place == 'curb':
        return st.curb(side, 0.05)
    return st.curb(side, st.verge[side] * (0.5 if place == 'verge' else 1.0))  # verge (edge)


# (mean count per image, class, drawer, place); counts are Poisson(mean * class weight).
OBJECTS = (
    (3.0, CAR, _vehicle, 'road'),
    (0.4, TRUCK, _vehicle, 'road'),
    (0.3, BUS, _vehicle, 'road'),
    (0.1, TRAIN, _vehicle, 'tram'),
    (2.0, PERSON, _person, 'sidewalk'),
    (0.5, BICYCLE, _cyclist, 'road edge'),
    (0.3, MOTORCYCLE, _cyclist, 'road edge'),
    (1.2, SIGN, _pole, 'curb'),
    (0.7, LIGHT, _pole, 'curb'),
    (0.6, POLE, _pole, 'curb'),
    (2.0, VEGETATION, _tree, 'verge'),
    (0.6, FENCE, _barrier, 'verge edge'),
    (0.4, WALL, _barrier, 'verge edge'),
)


def _place_objects(rng, st, weights, featured):
    """Objects as (depth, drawer, u, class), far ones first (the painter's order)."""
    items = []
    for mean, cls, drawer, place in OBJECTS:
        for _ in range(rng.poisson(mean * weights[cls]) + (cls == featured)):
            # the featured class stands mid-distance: big enough to learn, rarely hidden
            d = rng.uniform(0.3, 0.6) if cls == featured else rng.uniform(0.12, 0.85)
            items.append((d, drawer, _lateral(rng, st, place), cls))
    return sorted(items, key=lambda item: item[0])


def draw_scene(rng, h, w, style, featured=None):
    """Lay out and paint one scene; the canvas' ``label`` holds Cityscapes train ids."""
    weights = [float(style['class_weights'].get(name, 1.0)) for name in CLASSES]
    cv, st = _Canvas(h, w), _Street(rng, h, w, style)
    _draw_background(cv, rng, st, weights)
    _draw_ground(cv, rng, st)
    for d, drawer, u, cls in _place_objects(rng, st, weights, featured):
        drawer(cv, rng, st, d, u, cls)
    if style['hood'] > 0:  # the ego vehicle is unlabelled (255), as in Cityscapes
        cv.ellipse(w / 2, h, 0.75 * w, style['hood'] * h, IGNORE, PALETTES['dark'][0])
    return cv


def render_image(cv, rng, style):
    """RGB uint8 image: colours, patterns, textures and shadows, then the camera's style."""
    h, w = cv.label.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    colour = np.asarray(cv.colours, np.float32)[cv.inst]
    px, py, dark, grad = np.asarray(cv.patterns, np.float32)[cv.inst].transpose(2, 0, 1)
    on = (
        ((px == 0) | (xx % np.maximum(px, 1) < 0.6 * px))
        & ((py == 0) | (yy % np.maximum(py, 1) < 0.6 * py))
        & ((px > 0) | (py > 0))
    )
    smooth = cv2.resize(
        rng.standard_normal((h // 8 + 2, w // 8 + 2)).astype(np.float32),
        (w, h),
        interpolation=cv2.INTER_CUBIC,
    )
    amp = TEXTURE[cv.label]
    gain = (
        (1 - dark * on)
        * (1 + grad * (yy / h - 0.5))
        * cv.shade
        * (1 + amp[..., 0] * smooth + amp[..., 1] * rng.standard_normal((h, w)))
        * (1 + 0.15 * rng.uniform(-1, 1) * (xx / w - 0.5))
    )  # sun from one side
    img = colour * gain[..., None] * rng.uniform(0.85, 1.15)  # per-image exposure
    img = ((img - 128) * style['contrast'] + 128) * style['brightness'] * np.float32(style['gains'])
    if style['blur'] > 0:
        img = cv2.GaussianBlur(img, (0, 0), style['blur'])
    img = img + rng.normal(0, style['noise'], img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def resolve_style(name, shift, overrides=None):
    """``DEFAULT_STYLES[name]`` updated by ``overrides``, moved ``shift`` of the way from
    ``NEUTRAL_STYLE``."""
    style = dict(DEFAULT_STYLES[name], **(overrides or {}))
    for unknown, known, what in (
        (set(style) - set(NEUTRAL_STYLE), NEUTRAL_STYLE, 'style keys'),
        (set(style['class_weights']) - set(CLASSES), CLASSES, 'classes in class_weights'),
    ):
        if unknown:
            raise ValueError(
                f'unknown {what} {sorted(unknown)} for {name!r}; known: {", ".join(known)}'
            )
    mix = lambda a, b: a + shift * (b - a)  # noqa: E731
    out = {k: mix(v, style[k]) for k, v in NEUTRAL_STYLE.items() if isinstance(v, float)}
    out['gains'] = tuple(mix(a, b) for a, b in zip(NEUTRAL_STYLE['gains'], style['gains']))
    out['jpeg_quality'] = int(round(mix(NEUTRAL_STYLE['jpeg_quality'], style['jpeg_quality'])))
    out['class_weights'] = {k: mix(1.0, v) for k, v in style['class_weights'].items()}
    return out


def _file_names(name, split, index, seed):
    """(image, label) names inside the split's folders, spelled as the real dataset does."""
    if name == 'cityscapes':
        city = CITIES[split][index % 2]
        stem = f'{city}/{city}_{index // 2:06d}_000019'
        return f'{stem}_leftImg8bit.png', f'{stem}_gtFine_labelTrainIds.png'
    if name == 'bdd100k':
        digest = hashlib.md5(f'{seed}-{split}-{index}'.encode()).hexdigest()
        return f'{digest[:8]}-{digest[8:16]}.jpg', f'{digest[:8]}-{digest[8:16]}.png'
    seqs = CAMVID_SEQUENCES[split]
    stem = seqs[index % len(seqs)].format(30 * (index // len(seqs)) + 690)
    return f'{stem}.png', f'{stem}.png'


def _check_args(datasets, num_images, image_size, shift, seed):
    """Validate; returns ({name: {split: count}}, {name: (H, W)})."""
    for name in datasets:
        if name not in LAYOUTS:
            raise ValueError(f'unknown dataset {name!r}; known: {", ".join(LAYOUTS)}')
    if not datasets or len(set(datasets)) != len(datasets):
        raise ValueError(f'datasets must be distinct and non-empty, got {datasets}')
    if not (isinstance(shift, (int, float)) and 0 <= shift <= 1):
        raise ValueError(f'shift must be in [0, 1], got {shift!r}')
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f'seed must be a non-negative int, got {seed!r}')
    num_images = num_images or {}
    nested = any(k in LAYOUTS for k in num_images)  # {name: {split: n}} rather than {split: n}
    counts, sizes = {}, {}
    for name in datasets:
        splits = LAYOUTS[name][0]
        wanted = num_images.get(name, {}) if nested else num_images
        unknown = set(wanted) - set(splits if nested else DEFAULT_NUM_IMAGES)
        if unknown:
            raise ValueError(
                f'unknown splits {sorted(unknown)} in num_images for {name!r}; '
                f'its splits are {splits}'
            )
        counts[name] = {split: wanted.get(split, DEFAULT_NUM_IMAGES[split]) for split in splits}
        for split, n in counts[name].items():
            if not (isinstance(n, (int, np.integer)) and n >= 0):
                raise ValueError(
                    f'num_images for {name!r} {split!r} must be an int >= 0, got {n!r}'
                )
        if image_size is None or isinstance(image_size, dict):
            size = (image_size or {}).get(name, DEFAULT_SIZES[name])
        else:  # one (H, W) for all; CamVid keeps its 3:4 aspect at that height
            size = (image_size[0] * 3 // 4, image_size[0]) if name == 'camvid' else image_size
        if len(size) != 2 or not all(isinstance(v, (int, np.integer)) and v >= 16 for v in size):
            raise ValueError(
                f'image size for {name!r} must be (H, W) of ints >= 16, got {tuple(size)}'
            )
        sizes[name] = tuple(int(v) for v in size)
    return counts, sizes


def make_demo_data(
    out_dir,
    datasets=('cityscapes', 'bdd100k', 'camvid'),
    num_images=None,
    image_size=None,
    seed=0,
    shift=1.0,
    overwrite=False,
    styles=None,
    universal_labels=False,
):
    """Write demo datasets under ``out_dir/<name>`` in their real on-disk formats.

    Scene ``i`` of a split comes from the same random stream in every dataset and only the
    styles differ, so ``shift=0`` with equal sizes gives equal labels and images.

    Args:
        out_dir (str): Parent folder; each dataset goes to its own sub-folder.
        datasets (Sequence[str]): Any of 'cityscapes', 'bdd100k', 'camvid'.
        num_images (dict, optional): ``{split: count}`` for every dataset having that split,
            or ``{name: {split: count}}``. Defaults: train 24, val 8, test 8 (CamVid only).
        image_size (tuple | dict, optional): (H, W) for Cityscapes and BDD100K, CamVid then
            gets (3H/4, H); or ``{name: (H, W)}``. Defaults: 128x256, CamVid 96x128.
        seed (int): Seed of every scene; equal arguments give byte-identical files.
        shift (float): Covariate shift in [0, 1], from ``NEUTRAL_STYLE`` for every dataset
            (0) to each one's ``DEFAULT_STYLES`` entry (1).
        overwrite (bool): Delete and rewrite dataset folders that are not empty.
        styles (dict, optional): ``{name: {style key: value}}`` updating ``DEFAULT_STYLES``.
        universal_labels (bool): Also write each image's scene as drawn, in Cityscapes' 19
            train ids (the universal classes: CamVid's labels are coarser), to
            ``<name>/universal_annotations/<split>/`` under the label's file name: a truth to
            score predictions in the universal classes, which no shipped training config reads.
            Defaults to False.

    Returns:
        dict: ``{name: dict(data_root, splits={split: dict(num_images, img_path,
        seg_map_path, files=[(img_file, seg_map_file), ...])})}``; ``img_path`` and
        ``seg_map_path`` are the ``data_prefix`` of MMSeg's dataset classes; with
        ``universal_labels``, each split also has ``universal_seg_map_path``.
    """
    datasets = [datasets] if isinstance(datasets, str) else list(datasets)
    counts, sizes = _check_args(datasets, num_images, image_size, shift, seed)
    if set(styles or {}) - set(datasets):
        raise ValueError(
            f'styles given for {sorted(set(styles) - set(datasets))}, which are '
            f'not among datasets {datasets}'
        )
    resolved = {name: resolve_style(name, shift, (styles or {}).get(name)) for name in datasets}
    for name in datasets:  # check every folder before writing anything
        root = osp.join(out_dir, name)
        if osp.isdir(root) and os.listdir(root):
            if not overwrite:
                raise FileExistsError(
                    f'{root} exists and is not empty; pass overwrite=True '
                    '(--overwrite) to replace it'
                )
            shutil.rmtree(root)  # stale files would otherwise join the new splits
    info = {}
    for name in datasets:
        root, (splits, img_prefix, seg_prefix) = osp.join(out_dir, name), LAYOUTS[name]
        info[name] = dict(data_root=root, splits={})
        for split_idx, split in enumerate(splits):
            img_path, seg_map_path = img_prefix.format(split), seg_prefix.format(split)
            files = []
            for i in range(counts[name][split]):
                rng = np.random.default_rng([seed, split_idx, i])
                canvas = draw_scene(
                    rng, *sizes[name], resolved[name], featured=FEATURED[i % len(FEATURED)]
                )
                img = render_image(canvas, rng, resolved[name])
                label = CAMVID_LUT[canvas.label] if name == 'camvid' else canvas.label
                img_name, seg_name = _file_names(name, split, i, seed)
                img_file = osp.join(root, img_path, img_name)
                seg_file = osp.join(root, seg_map_path, seg_name)
                os.makedirs(osp.dirname(img_file), exist_ok=True)
                os.makedirs(osp.dirname(seg_file), exist_ok=True)
                params = (
                    [cv2.IMWRITE_JPEG_QUALITY, resolved[name]['jpeg_quality']]
                    if img_file.endswith('.jpg')
                    else []
                )
                cv2.imwrite(img_file, img[..., ::-1], params)  # RGB -> cv2's BGR
                cv2.imwrite(seg_file, label)
                if universal_labels:
                    universal = osp.join(root, UNIVERSAL_PREFIX.format(split), seg_name)
                    os.makedirs(osp.dirname(universal), exist_ok=True)
                    cv2.imwrite(universal, canvas.label)
                files.append((img_file, seg_file))
            info[name]['splits'][split] = dict(
                num_images=len(files), img_path=img_path, seg_map_path=seg_map_path, files=files
            )
            if universal_labels:
                info[name]['splits'][split]['universal_seg_map_path'] = UNIVERSAL_PREFIX.format(
                    split
                )
    return info
