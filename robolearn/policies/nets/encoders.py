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


COMPUTE_DTYPES = ("float32", "bfloat16", "auto")


def native_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX-BF16 in its flags); False where unknown."""
    try:
        flags = Path(cpuinfo).read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def resolve_compute_dtype(name: str) -> str:
    """"auto" -> "bfloat16" on CPUs with native bf16 (`native_bf16`), else "float32"; others unchanged."""
    if name not in COMPUTE_DTYPES:
        raise ConfigError(f"encoder_dtype {name!r} must be one of {list(COMPUTE_DTYPES)}.")
    if name == "auto":
        return "bfloat16" if native_bf16() else "float32"
    return name


def group_norm(channels: int) -> nn.GroupNorm:
    # 16 channels per group, as diffusion_policy does when it swaps BatchNorm for GroupNorm.
    return nn.GroupNorm(max(1, channels // 16), channels)


# Stride-1 convolutions on feature maps of at most this many positions (ResNet-18's last stage at 84x84:
# 3x3) get their weight gradient from `_SmallMapConv`. Measured on a 2-core EPYC (oneDNN, float32, 128 maps of 512 channels at
# 3x3, one thread): oneDNN's backward-weights kernel 88-139 ms, the same gradient as a forward
# convolution 38-45 ms; at 6x6 (36 positions), and for the stride-2 convolution into that stage, oneDNN's
# own kernel is as fast or faster.
SMALL_MAP_POSITIONS = 16


class _SmallMapConv(torch.autograd.Function):
    """conv2d (no bias, dilation 1, groups 1) whose weight gradient is computed as a forward convolution:
    dW[o, c, a, b] = sum over n, i, j of dY[n, o, i, j] * Xpad[n, c, s*i + a, s*j + b], i.e. X with batch
    and channels swapped, (C, N, H, W), convolved with dY likewise swapped, (O, N, Ho, Wo), as the filter,
    at dilation s (only stride 1 is routed here; the identity holds for any). The input gradient is oneDNN's. Same sums as `F.conv2d`'s backward, in another order."""

    @staticmethod
    def forward(ctx, x, weight, stride, padding):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding = stride, padding
        return F.conv2d(x, weight, None, stride, padding)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad_out, x, weight, None, list(ctx.stride), list(ctx.padding), [1, 1], False, [0, 0], 1,
                [True, False, False])[0]
        if ctx.needs_input_grad[1]:
            kh, kw = weight.shape[-2:]
            fmt = torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last) and not \
                weight.is_contiguous() else torch.contiguous_format
            g = F.conv2d(x.transpose(0, 1), grad_out.transpose(0, 1), None, 1, ctx.padding, ctx.stride)
            grad_w = g[:, :, :kh, :kw].transpose(0, 1).contiguous(memory_format=fmt)
        return grad_x, grad_w, None, None


class Conv2d(nn.Conv2d):
    """`nn.Conv2d` (same parameters and state dict) that trains faster on small feature maps: there the
    weight gradient comes from `_SmallMapConv`. Forward values are `F.conv2d`'s exactly."""

    small_map_positions = SMALL_MAP_POSITIONS
    """Stride-1 maps of at most this many positions take the `_SmallMapConv` path in training (0: never)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (self.weight.requires_grad and torch.is_grad_enabled() and not torch.is_autocast_enabled(x.device.type)
                and self.bias is None and self.groups == 1
                and self.stride == (1, 1) and self.dilation == (1, 1) and self.padding_mode == "zeros"
                and isinstance(self.padding, tuple) and x.shape[-2] * x.shape[-1] <= self.small_map_positions):
            return _SmallMapConv.apply(x, self.weight, self.stride, self.padding)
        return super().forward(x)


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = group_norm(c_out)
        self.conv2 = Conv2d(c_out, c_out, 3, 1, 1, bias=False)
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
        self.formats = [torch.contiguous_format] * (1 + self.n_stages)

    def set_memory_formats(self, formats: list[torch.memory_format]) -> None:
        """The memory format of the stem (conv1, bn1) and of each stage, weights and activations alike (an
        activation is converted where its stage's format changes)."""
        if len(formats) != 1 + self.n_stages:
            raise ValueError(f"need {1 + self.n_stages} memory formats (stem + stages), got {len(formats)}.")
        self.formats = list(formats)
        for part, fmt in zip([(self.conv1, self.bn1)] + [(getattr(self, f"layer{i + 1}"),)
                                                           for i in range(self.n_stages)], self.formats):
            for m in part:
                m.to(memory_format=fmt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=self.formats[0])
        # relu(max_pool(x)) == max_pool(relu(x)) (max commutes with any monotonic map): the ReLU and its
        # backward then run on the 4x smaller pooled map.
        x = F.relu(F.max_pool2d(self.bn1(self.conv1(x)), 3, 2, 1), inplace=True)
        for i in range(self.n_stages):
            x = getattr(self, f"layer{i + 1}")(x.contiguous(memory_format=self.formats[i + 1]))
        return x


def trunk_memory_formats(trunk: ResNetTrunk, hw: tuple[int, int], bf16: bool) -> list[torch.memory_format]:
    """Memory formats for the stem and each stage of `trunk` on (H, W) = `hw` inputs.

    Measured on a 2-core EPYC (oneDNN): bf16 convolutions are ~10% faster channels-last throughout. In
    float32, channels-last makes the stem and the stages on large maps faster (conv1 forward 73 vs 112 ms,
    its backward 45 vs 82 ms, max-pool ~20x, for 128 crops of 84x84, one thread), while on maps of at most
    `SMALL_MAP_POSITIONS` positions (the last stage at 84x84: 3x3) NCHW is faster (forward 38 vs 56 ms
    per 512-channel conv); batch-1/2 inference is as fast as all-NCHW or faster.
    """
    if bf16:
        return [torch.channels_last] * (1 + trunk.n_stages)
    h, w = hw
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # conv1: 7x7, stride 2, padding 3
    h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # max-pool: 3x3, stride 2, padding 1
    formats = [torch.channels_last]
    for i in range(trunk.n_stages):
        if i:
            h, w = (h - 1) // 2 + 1, (w - 1) // 2 + 1  # the stage's first conv: 3x3, stride 2, padding 1
        formats.append(torch.contiguous_format if h * w <= SMALL_MAP_POSITIONS else torch.channels_last)
    return formats


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
        self.backbone.set_memory_formats(trunk_memory_formats(self.backbone, self.crop_shape, self.autocast))

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = crop(images, self.crop_shape, self.training, generator)
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
