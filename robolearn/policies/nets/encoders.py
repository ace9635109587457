"""Image encoders: a ResNet with GroupNorm, crop augmentation and a keypoint or pooled head.

`ResNetEncoder` maps (N, 3, H, W) float images in [0, 1] to (N, feature_dim) features:
crop (random per image in training, centred in eval) -> ResNet trunk (GroupNorm instead of
BatchNorm, so EMA weights and batch-size-1 inference behave) -> spatial softmax keypoints or global
average pool -> Linear -> ReLU.

Backbone parameter names follow torchvision's ResNet (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer1.0.downsample.0`` ...), so `load_pretrained_encoder` can take a converted torchvision
state dict saved as safetensors: GroupNorm takes BatchNorm's affine weight/bias.

Presets (`RESNET_PRESETS`): "resnet18" (blocks [2, 2, 2, 2], widths 64..512, 11.2 M params) and
"small" (blocks [1, 1, 1, 1], widths 32..256, 1.2 M params).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import ConfigError, InvalidValueError, MissingPathError

RESNET_PRESETS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    # name: (blocks per stage, widths per stage)
    "resnet18": ((2, 2, 2, 2), (64, 128, 256, 512)),
    "small": ((1, 1, 1, 1), (32, 64, 128, 256)),
}


def group_norm(channels: int) -> nn.GroupNorm:
    # 16 channels per group, as diffusion_policy does when it swaps BatchNorm for GroupNorm.
    return nn.GroupNorm(max(1, channels // 16), channels)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = group_norm(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = group_norm(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), group_norm(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)), inplace=True)
        h = self.bn2(self.conv2(h))
        return F.relu(h + (x if self.downsample is None else self.downsample(x)), inplace=True)


class ResNetTrunk(nn.Module):
    """torchvision-layout ResNet without avgpool/fc: (N, 3, H, W) -> (N, widths[-1], H/32, W/32)."""

    def __init__(self, blocks: tuple[int, ...], widths: tuple[int, ...]):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 7, 2, 3, bias=False)
        self.bn1 = group_norm(widths[0])
        c_in = widths[0]
        for i, (n, c) in enumerate(zip(blocks, widths)):
            stage = [BasicBlock(c_in if j == 0 else c, c, (1 if i == 0 else 2) if j == 0 else 1) for j in range(n)]
            self.add_module(f"layer{i + 1}", nn.Sequential(*stage))
            c_in = c
        self.n_stages = len(blocks)
        self.out_channels = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x)), inplace=True), 3, 2, 1)
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x)
        return x


class SpatialSoftmax(nn.Module):
    """(N, C, h, w) -> (N, 2K): expected image coordinates in [-1, 1] of K learned keypoint maps."""

    def __init__(self, channels: int, num_keypoints: int, h: int, w: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, num_keypoints, 1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.proj(x).flatten(2).softmax(dim=-1)  # (N, K, h*w)
        return (attn @ self.grid).flatten(1)


def crop(
    images: torch.Tensor, shape: tuple[int, int], random: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Crop (N, C, H, W) to (N, C, h, w): an independent random window per image, or the centre."""
    N, C, H, W = images.shape
    h, w = shape
    if (h, w) == (H, W):
        return images
    if h > H or w > W:
        raise ValueError(f"crop shape {shape} is larger than the image ({H}, {W}).")
    if not random:
        top, left = (H - h) // 2, (W - w) // 2
        return images[:, :, top : top + h, left : left + w]
    dev = images.device
    top = torch.randint(0, H - h + 1, (N, 1), generator=generator).to(dev)
    left = torch.randint(0, W - w + 1, (N, 1), generator=generator).to(dev)
    rows = (top + torch.arange(h, device=dev)) * W  # (N, h)
    flat = (rows[:, :, None] + left[:, None, :] + torch.arange(w, device=dev)).reshape(N, h * w, 1)
    # Gather whole pixels from an (N, H*W, C) view (free for channels-last input, which is what
    # permuted HWC camera frames are).
    pixels = images.permute(0, 2, 3, 1).reshape(N, H * W, C)
    return pixels.gather(1, flat.expand(N, h * w, C)).view(N, h, w, C).permute(0, 3, 1, 2)


class ResNetEncoder(nn.Module):
    """Images (N, 3, H, W) float in [0, 1] -> features (N, feature_dim).

    Args:
        image_shape: (H, W) of the input images.
        crop_shape: (h, w) crop (random in training, centre in eval), or None for no crop.
        backbone: a `RESNET_PRESETS` name.
        pool: "spatial_softmax" (keypoints, as in Diffusion Policy) or "avg" (global average pool).
        num_keypoints: K for the spatial softmax.
        feature_dim: output size.
        compute_dtype: "float32", or "bfloat16" to run the trunk under torch.autocast (weights and
            output stay float32). About 1.8x faster on CPUs with AVX512-BF16 or AMX; much slower
            on CPUs without native bf16.
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        crop_shape: tuple[int, int] | None = (84, 84),
        backbone: str = "small",
        pool: str = "spatial_softmax",
        num_keypoints: int = 32,
        feature_dim: int = 64,
        compute_dtype: str = "float32",
    ):
        super().__init__()
        if backbone not in RESNET_PRESETS:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {sorted(RESNET_PRESETS)}.")
        if pool not in ("spatial_softmax", "avg"):
            raise ValueError(f"unknown pool {pool!r}; choose 'spatial_softmax' or 'avg'.")
        if compute_dtype not in ("float32", "bfloat16"):
            raise ValueError(f"compute_dtype {compute_dtype!r} must be 'float32' or 'bfloat16'.")
        self.autocast = compute_dtype == "bfloat16"
        self.crop_shape = tuple(crop_shape) if crop_shape is not None else tuple(image_shape)
        if self.crop_shape[0] > image_shape[0] or self.crop_shape[1] > image_shape[1]:
            raise ConfigError(f"crop_shape {self.crop_shape} is larger than the image shape {tuple(image_shape)}.")
        self.backbone = ResNetTrunk(*RESNET_PRESETS[backbone])
        with torch.no_grad():
            h, w = self.backbone(torch.zeros(1, 3, *self.crop_shape)).shape[-2:]
        c = self.backbone.out_channels
        if pool == "spatial_softmax":
            self.pool = SpatialSoftmax(c, num_keypoints, h, w)
            pooled = 2 * num_keypoints
        else:
            self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            pooled = c
        self.out = nn.Linear(pooled, feature_dim)
        self.feature_dim = feature_dim
        # Measured on CPU (oneDNN): bf16 convolutions are ~10% faster channels-last, fp32 ones ~15%
        # faster NCHW at inference batch sizes (and equal in training).
        self.memory_format = torch.channels_last if self.autocast else torch.contiguous_format
        self.to(memory_format=self.memory_format)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = crop(images, self.crop_shape, self.training, generator).contiguous(memory_format=self.memory_format)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            h = self.pool(self.backbone(x))
        return F.relu(self.out(h.float()))


_IGNORED_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def load_pretrained_encoder(module: nn.Module, path: str | Path) -> nn.Module:
    """Load backbone weights from a local .safetensors file into `module` (returns it).

    For a `ResNetEncoder` the weights go into its `backbone` (torchvision names, e.g. a converted
    torchvision resnet18 state dict); any other module gets them as is. BatchNorm running stats
    and the classifier (``fc.*``) have no counterpart here and are skipped; every other key must
    match by name and shape, or a ValueError lists what differs.
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingPathError(f"pretrained encoder weights {str(path)!r} do not exist.")
    target = module.backbone if isinstance(module, ResNetEncoder) else module
    loaded = {k: v for k, v in load_file(str(path)).items()
              if not k.endswith(_IGNORED_SUFFIXES) and not k.startswith("fc.")}
    own = target.state_dict()
    missing = sorted(set(own) - set(loaded))
    unexpected = sorted(set(loaded) - set(own))
    wrong = sorted(k for k in set(own) & set(loaded) if own[k].shape != loaded[k].shape)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} key(s) e.g. {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} key(s) e.g. {unexpected[:3]}")
        if wrong:
            parts.append("shape mismatch for " + ", ".join(
                f"{k} (file {tuple(loaded[k].shape)}, model {tuple(own[k].shape)})" for k in wrong[:3]))
        raise InvalidValueError(f"{path} does not fit the {type(target).__name__}: " + "; ".join(parts) + ".")
    target.load_state_dict(loaded)
    return module
