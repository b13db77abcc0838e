"""Real-image sources: the teacher's own data (``target``), other image datasets (``digits``,
``mnist``, ``cifar100``, ...) and patches of natural photos shipped with scikit-learn and
scikit-image (``photos``)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
from torchvision.ops import roi_align

from distill.sources.base import Source, TensorSource, gen_for, single_threaded

# Natural photographs bundled inside scikit-image (no download); the sample images of
# scikit-learn (china, flower) are always added.
SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "coins", "hubble_deep_field",
                  "immunohistochemistry", "moon", "retina", "rocket", "brick", "grass", "gravel")


def dataset_images(name: str, split: str = "train", root: str | None = None) -> torch.Tensor:
    """Images of a :func:`models.datasets.load_dataset` dataset: one split or ``"all"``."""
    from models.datasets import load_dataset

    ds = load_dataset(name, root=root)
    if split == "all":
        return torch.cat([ds.train.images, ds.val.images, ds.test.images])
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val, test or all, got {split!r}")
    return getattr(ds, split).images


class DatasetSource(TensorSource):
    """A dataset's images resized and channel-converted for the teacher.

    ``target`` uses the teacher's dataset and its training split only; other datasets used as
    out-of-domain transfer sets pool all their splits.
    """

    def __init__(self, image_size: tuple[int, int] | int, channels: int, dataset: str,
                 split: str = "all", root: str | None = None, name: str | None = None) -> None:
        super().__init__(dataset_images(dataset, split, root), image_size, channels,
                         name=name or dataset)
        self.dataset = dataset


@lru_cache(maxsize=1)
def load_photos() -> tuple[torch.Tensor, ...]:
    """The bundled natural photos as float RGB tensors ``[3, H, W]`` in [0, 1]."""
    from sklearn.datasets import load_sample_images

    photos = [np.asarray(im) for im in load_sample_images().images]
    try:
        import skimage.data as skd
    except ImportError:  # scikit-image is optional: scikit-learn's two photos still work
        skd = None
    if skd is not None:
        for name in SKIMAGE_PHOTOS:
            try:
                photos.append(np.asarray(getattr(skd, name)()))
            except Exception:  # an image missing from this scikit-image build
                continue
    out = []
    for im in photos:
        t = torch.from_numpy(np.array(im)).float()
        if t.max() > 1.0:
            t = t / 255.0
        t = t[None] if t.ndim == 2 else t.permute(2, 0, 1)
        out.append(t[:3].expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t[:3].contiguous())
    return tuple(out)


def _pyramid(img: torch.Tensor, min_side: int) -> list[torch.Tensor]:
    levels = [img]
    while min(levels[-1].shape[-2:]) // 2 >= min_side:
        levels.append(torch.nn.functional.avg_pool2d(levels[-1][None], 2)[0])
    return levels


class PhotoPatchSource(Source):
    """Random crops of natural photos at random scales and positions, randomly flipped.

    Crop sides are log-uniform between ``min_frac`` and ``max_frac`` of the photo's shorter
    side; crops are resampled from an image pyramid with ``roi_align`` so large crops are
    averaged (not aliased) when shrunk to the teacher's size.
    """

    name = "photos"

    def __init__(self, image_size: tuple[int, int] | int, channels: int,
                 min_frac: float = 0.05, max_frac: float = 0.6) -> None:
        super().__init__(image_size, channels)
        self.min_frac, self.max_frac = min_frac, max_frac
        self.pyramids = [_pyramid(p, 2 * max(self.image_size)) for p in load_photos()]

    @single_threaded
    def sample(self, n: int, seed: int) -> torch.Tensor:
        g = gen_for(seed)
        h, w = self.image_size
        u = torch.rand(n, 5, generator=g)
        which = torch.randint(0, len(self.pyramids), (n,), generator=g)
        out = torch.empty(n, 3, h, w)
        for i in torch.unique(which).tolist():
            sel = torch.nonzero(which == i).flatten()
            base = self.pyramids[i][0]
            ph, pw = base.shape[-2:]
            short = min(ph, pw)
            frac = self.min_frac * (self.max_frac / self.min_frac) ** u[sel, 0]
            side = frac * short
            level = torch.clamp(torch.floor(torch.log2(side / (2 * max(h, w)))), 0,
                                len(self.pyramids[i]) - 1).long()
            x0 = u[sel, 1] * (pw - side)
            y0 = u[sel, 2] * (ph - side * h / w)
            for lv in torch.unique(level).tolist():
                m = level == lv
                scale = 1.0 / (2 ** lv)
                boxes = torch.stack([torch.zeros(int(m.sum())), x0[m] * scale, y0[m] * scale,
                                     (x0[m] + side[m]) * scale, (y0[m] + side[m] * h / w) * scale], 1)
                feat = self.pyramids[i][lv][None]
                ratio = max(1, math.ceil(float(side[m].max()) * scale / max(h, w)))
                out[sel[m]] = roi_align(feat, boxes, (h, w), spatial_scale=1.0,
                                        sampling_ratio=ratio, aligned=True)
        flip = u[:, 3] < 0.5
        out[flip] = out[flip].flip(-1)
        vflip = u[:, 4] < 0.1
        out[vflip] = out[vflip].flip(-2)
        if self.channels == 1:
            w_ = torch.tensor((0.299, 0.587, 0.114)).view(1, 3, 1, 1)
            out = (out * w_).sum(1, keepdim=True)
        return out.clamp_(0.0, 1.0).contiguous()
