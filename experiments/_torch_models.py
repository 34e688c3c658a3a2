"""PyTorch twins of the cnn_jax models the speed benchmarks race against (benchmarks only).

Same layers, shapes, parameter counts, initial-weight scales and BatchNorm conventions as
`cnn_jax.models` (LeNet-5, CIFAR ResNet-20 with option A shortcuts, MobileNet v1 with width
multiplier alpha; U-Net, C3D, the TCN of sequential MNIST and YOLOv1), written the way a PyTorch
user would: NCHW (clips NCDHW, sequences NCL), `nn.Module`s, `torch.optim`.
`tests/test_benchmarks.py` checks that each twin has exactly the parameter count of its cnn_jax
model, so the two sides of a benchmark do the same arithmetic. YOLOv1's loss (eq. 3, as
`cnn_jax.models.yolo.yolo_loss_terms` computes it) is ported too (`yolo_loss`): the tests check
that it gives our loss and gradients on the same outputs and batch.

The training recipe of a shipped config (SGD, momentum, Nesterov, coupled weight decay on the
kernels only, cosine / step schedule stepped every iteration) is rebuilt by `torch_optimizer`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 as `cnn_jax.models.lenet.lenet5`: 28x28 padded to 32x32, tanh, average pooling;
    with `modern=True` as `lenet5_modern`: ReLU, max pooling, C1 padded by 2 on the 28x28 input."""

    def __init__(self, num_classes: int = 10, modern: bool = False):
        super().__init__()
        self.modern = modern
        self.c1 = nn.Conv2d(1, 6, 5, padding=2 if modern else 0)
        self.c3 = nn.Conv2d(6, 16, 5)
        self.c5 = nn.Conv2d(16, 120, 5)
        self.f6 = nn.Linear(120, 84)
        self.output = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act, pool = (F.relu, F.max_pool2d) if self.modern else (torch.tanh, F.avg_pool2d)
        if not self.modern:
            x = F.pad(x, (2, 2, 2, 2))
        x = pool(act(self.c1(x)), 2)
        x = pool(act(self.c3(x)), 2)
        x = act(self.c5(x)).flatten(1)
        return self.output(act(self.f6(x)))


class _BasicBlockA(nn.Module):
    """He et al. 2016 basic block with the option A shortcut (subsample, append zero channels)."""

    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.stride, self.extra = stride, planes - in_planes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.stride > 1 else x
        if self.extra:
            shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra))
        return F.relu(y + shortcut)


class CifarResNet(nn.Module):
    """CIFAR ResNet-(6n+2) as `cnn_jax.models.resnet.resnet20` (n = 3): 16/32/64 filters."""

    def __init__(self, n: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        blocks, in_planes = [], 16
        for stage, planes in enumerate((16, 32, 64)):
            for b in range(n):
                blocks.append(_BasicBlockA(in_planes, planes, 2 if stage > 0 and b == 0 else 1))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(F.relu(self.bn1(self.conv1(x))))
        return self.fc(x.mean((2, 3)))


def _conv_bn_relu(cin: int, cout: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class MobileNetV1(nn.Module):
    """MobileNet v1 as `cnn_jax.models.mobilenet.MobileNetV1` (Howard et al. 2017 Table 1)."""

    LAYERS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1), (512, 1),
              (512, 1), (512, 1), (1024, 2), (1024, 1))

    def __init__(self, alpha: float = 1.0, num_classes: int = 10):
        super().__init__()

        def width(c: int) -> int:
            return max(1, int(round(c * alpha)))

        layers, cin = [_conv_bn_relu(3, width(32), 3, 2)], width(32)
        for channels, stride in self.LAYERS:
            layers += [_conv_bn_relu(cin, cin, 3, stride, groups=cin), _conv_bn_relu(cin, width(channels), 1, 1)]
            cin = width(channels)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
        nn.init.normal_(self.classifier.weight, 0, 0.01)
        nn.init.zeros_(self.classifier.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


class _DoubleConv(nn.Sequential):
    """Two 3x3 convolutions padded by 1, each followed by [BatchNorm and] ReLU."""

    def __init__(self, cin: int, features: int, batch_norm: bool):
        layers = []
        for c in (cin, features):
            layers.append(nn.Conv2d(c, features, 3, padding=1, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm2d(features))
            layers.append(nn.ReLU(inplace=True))
        super().__init__(*layers)


class UNet(nn.Module):
    """U-Net as `cnn_jax.models.unet.UNet` with padding='same': `depth` levels of two 3x3
    convolutions from `base_width` channels, 2x2 max pools, 2x2 stride-2 `nn.ConvTranspose2d`
    up-sampling, the skip concatenated before the up-sampled map, a 1x1 classifier; He normal."""

    def __init__(self, num_classes: int = 2, base_width: int = 64, depth: int = 4,
                 batch_norm: bool = False, in_channels: int = 1):
        super().__init__()
        widths = [base_width * 2**level for level in range(depth + 1)]
        self.downs = nn.ModuleList()
        cin = in_channels
        for w in widths[:-1]:
            self.downs.append(_DoubleConv(cin, w, batch_norm))
            cin = w
        self.bottom = _DoubleConv(cin, widths[-1], batch_norm)
        self.upconvs, self.ups = nn.ModuleList(), nn.ModuleList()
        cin = widths[-1]
        for w in reversed(widths[:-1]):
            self.upconvs.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.ups.append(_DoubleConv(2 * w, w, batch_norm))
            cin = w
        self.classifier = nn.Conv2d(cin, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            elif isinstance(m, nn.ConvTranspose2d):  # weight (in, out, k, k): fan_in is dim 0's
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for down in self.downs:
            x = down(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for upconv, up, skip in zip(self.upconvs, self.ups, reversed(skips), strict=True):
            x = up(torch.cat([skip, upconv(x)], 1))
        return self.classifier(x)


# C3D (Tran et al. 2015 Fig. 3): (filters, pool after) of conv1a ... conv5b; pool1 keeps time.
C3D_LAYERS = ((64, "pool1"), (128, "pool2"), (256, None), (256, "pool3"), (512, None),
              (512, "pool4"), (512, None), (512, "pool5"))


class C3D(nn.Module):
    """C3D as `cnn_jax.models.c3d.C3D` (temporal): eight 3x3x3 convolutions padded by 1 with
    ReLU, max pools 1x2x2 then 2x2x2 (ceil mode), fc6, fc7 with ReLU and dropout, fc8; NCDHW
    clips of `clip_shape` (T, H, W) set fc6's inputs."""

    def __init__(self, num_classes: int = 487, width: float = 1.0, fc_features: int = 4096,
                 dropout_rate: float = 0.5, in_channels: int = 1,
                 clip_shape: tuple[int, int, int] = (16, 112, 112)):
        super().__init__()
        layers, cin = [], in_channels
        for filters, pool in C3D_LAYERS:
            cout = max(1, round(filters * width))
            layers += [nn.Conv3d(cin, cout, 3, padding=1), nn.ReLU(inplace=True)]
            if pool:
                layers.append(nn.MaxPool3d((1, 2, 2) if pool == "pool1" else 2, ceil_mode=True))
            cin = cout
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, in_channels, *clip_shape)).numel()
        self.classifier = nn.Sequential(
            nn.Linear(flat, fc_features), nn.ReLU(inplace=True), nn.Dropout(dropout_rate),
            nn.Linear(fc_features, fc_features), nn.ReLU(inplace=True), nn.Dropout(dropout_rate),
            nn.Linear(fc_features, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv3d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))  # channel-major, as Caffe's


class _TemporalBlock(nn.Module):
    """Bai et al. 2018 Fig. 1b: two weight-normed dilated causal convolutions (left-padded by
    (k - 1) d; the authors' code pads both sides and chomps the right, computing outputs it
    throws away), each with ReLU and dropout; a 1x1 convolution on the skip if the channels
    change; ReLU of the sum."""

    def __init__(self, cin: int, channels: int, kernel_size: int, dilation: int, dropout: float):
        super().__init__()
        weight_norm = nn.utils.parametrizations.weight_norm
        self.conv1 = weight_norm(nn.Conv1d(cin, channels, kernel_size, dilation=dilation))
        self.conv2 = weight_norm(nn.Conv1d(channels, channels, kernel_size, dilation=dilation))
        self.pad = (kernel_size - 1) * dilation
        self.dropout = nn.Dropout(dropout)
        self.downsample = nn.Conv1d(cin, channels, 1) if cin != channels else None
        if self.downsample is not None:
            nn.init.normal_(self.downsample.weight, 0, 0.01)
            nn.init.zeros_(self.downsample.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dropout(F.relu(self.conv1(F.pad(x, (self.pad, 0)))))
        y = self.dropout(F.relu(self.conv2(F.pad(y, (self.pad, 0)))))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class TCN(nn.Module):
    """The TCN of sequential MNIST as `cnn_jax.models.tcn.TCN`: an NCHW image read pixel by pixel
    (`x.view(n, c, h * w)`, as the authors' code does), `num_levels` residual blocks of
    `channels` with dilations 1, 2, 4, ..., a linear layer on the last step."""

    def __init__(self, num_classes: int = 10, channels: int = 25, num_levels: int = 8,
                 kernel_size: int = 7, dropout_rate: float = 0.05, in_channels: int = 1):
        super().__init__()
        self.blocks = nn.Sequential(*(
            _TemporalBlock(in_channels if i == 0 else channels, channels, kernel_size, 2**i,
                           dropout_rate) for i in range(num_levels)))
        self.linear = nn.Linear(channels, num_classes)
        nn.init.normal_(self.linear.weight, 0, 0.01)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        return self.linear(self.blocks(x.reshape(n, c, -1))[:, :, -1])


# yolov1_small's convolutions (cnn_jax.models.yolo.SMALL_CONVS): (kernel, filters, stride), "M" a pool
YOLOV1_SMALL_CONVS = ((3, 16, 1), "M", (3, 32, 1), "M", (1, 16, 1), (3, 64, 1), "M", (1, 32, 1),
                      (3, 128, 1))


class YOLOv1(nn.Module):
    """YOLOv1 as `cnn_jax.models.yolo.YOLOv1`: convolutions padded by k // 2 with biases and
    leaky ReLU 0.1, 2x2 max pools, FC `fc_features` (leaky ReLU, dropout 0.5), FC to the
    S x S x (5 B + C) grid, returned (N, S, S, 5 B + C); `image_shape` (H, W) sets FC 1's inputs."""

    def __init__(self, num_classes: int = 10, grid_size: int = 8, boxes_per_cell: int = 2,
                 convs=YOLOV1_SMALL_CONVS, fc_features: int = 512, dropout_rate: float = 0.5,
                 in_channels: int = 1, image_shape: tuple[int, int] = (64, 64)):
        super().__init__()
        layers, cin = [], in_channels
        for layer in convs:
            if layer == "M":
                layers.append(nn.MaxPool2d(2))
                continue
            kernel, filters, stride = layer
            layers += [nn.Conv2d(cin, filters, kernel, stride, kernel // 2), nn.LeakyReLU(0.1)]
            cin = filters
        self.features = nn.Sequential(*layers)
        with torch.no_grad():
            flat = self.features(torch.zeros(1, in_channels, *image_shape)).numel()
        self.grid_size, self.depth = grid_size, 5 * boxes_per_cell + num_classes
        self.fc1 = nn.Linear(flat, fc_features)
        self.dropout = nn.Dropout(dropout_rate)
        self.fc2 = nn.Linear(fc_features, grid_size * grid_size * self.depth)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.dropout(F.leaky_relu(self.fc1(self.features(x).flatten(1)), 0.1))
        s = self.grid_size
        return self.fc2(x).view(-1, s, s, self.depth)


def _pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of xyxy boxes (..., N, 4) and (..., M, 4): (..., N, M); 0/0 is nan, as torchvision's."""
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    lt = torch.maximum(a[..., :, None, :2], b[..., None, :, :2])
    rb = torch.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area_a[..., :, None] + area_b[..., None, :] - inter)


def yolo_loss(grid: torch.Tensor, boxes: torch.Tensor, classes: torch.Tensor,
              box_mask: torch.Tensor, image_size: tuple[int, int], boxes_per_cell: int = 2,
              lambda_coord: float = 5.0, lambda_noobj: float = 0.5) -> torch.Tensor:
    """YOLOv1's eq. 3 summed over each image's grid, averaged over the images: the formula of
    `cnn_jax.models.yolo.yolo_loss_terms` (one object per cell, the first box in a cell owns
    it; the responsible predictor has the highest IoU, ties to the lower index; the confidence
    target is that IoU, without gradient). `grid` (N, S, S, 5 B + C); `boxes` (N, M, 4) xyxy
    pixels of an image of `image_size` (H, W), `classes` (N, M) int64, `box_mask` (N, M) bool."""
    n, s = grid.shape[:2]
    b = boxes_per_cell
    per_box = grid[..., :5 * b].reshape(n, s, s, b, 5)
    numbers, confidence, probs = per_box[..., :4], per_box[..., 4], grid[..., 5 * b:]
    height, width = image_size
    gt = boxes / boxes.new_tensor([width, height, width, height])
    cx, cy = (gt[..., 0] + gt[..., 2]) / 2, (gt[..., 1] + gt[..., 3]) / 2
    w, h = gt[..., 2] - gt[..., 0], gt[..., 3] - gt[..., 1]
    col = torch.floor(cx * s).clamp(0, s - 1).long()
    row = torch.floor(cy * s).clamp(0, s - 1).long()
    cell = row * s + col  # (N, M)

    m = boxes.shape[1]
    earlier = torch.arange(m)[None, :] < torch.arange(m)[:, None]  # [i, j]: box j before box i
    taken = (cell[:, :, None] == cell[:, None, :]) & box_mask[:, None, :] & earlier
    owner = (box_mask & ~taken.any(2)).float()

    def at_cells(x: torch.Tensor) -> torch.Tensor:  # (N, S, S, ...) -> (N, M, ...) at `cell`
        flat = x.reshape(n, s * s, -1)
        return flat.gather(1, cell[..., None].expand(-1, -1, flat.shape[-1]))

    numbers_m = at_cells(numbers).reshape(n, m, b, 4)
    confidence_m, probs_m = at_cells(confidence), at_cells(probs)
    cx_p = (col[..., None] + numbers_m[..., 0]) / s
    cy_p = (row[..., None] + numbers_m[..., 1]) / s
    half_w, half_h = numbers_m[..., 2] ** 2 / 2, numbers_m[..., 3] ** 2 / 2
    predicted = torch.stack([cx_p - half_w, cy_p - half_h, cx_p + half_w, cy_p + half_h], -1)
    with torch.no_grad():
        iou = torch.nan_to_num(_pairwise_iou(predicted, gt[:, :, None, :])[..., 0])
        iou = torch.where(owner[..., None] > 0, iou, torch.zeros_like(iou))
        responsible = F.one_hot(iou.argmax(-1), b).float()  # (N, M, B)

    target = torch.stack([cx * s - col, cy * s - row, w.sqrt(), h.sqrt()], -1)
    coord_error = ((numbers_m - target[:, :, None, :]) ** 2).sum(-1)
    coord = (owner * (responsible * coord_error).sum(-1)).sum(1)
    obj = (owner * (responsible * (confidence_m - iou) ** 2).sum(-1)).sum(1)
    one_hot = F.one_hot(classes, probs.shape[-1]).float()
    cls = (owner * ((probs_m - one_hot) ** 2).sum(-1)).sum(1)
    in_cell = F.one_hot(cell, s * s).float() * owner[..., None]  # (N, M, S * S)
    responsible_grid = torch.einsum("nmk,nmb->nkb", in_cell, responsible)
    no_obj = ((1 - responsible_grid) * confidence.reshape(n, s * s, b) ** 2).sum((1, 2))
    return (lambda_coord * coord + obj + lambda_noobj * no_obj + cls).mean()


def task_loss(task: str, outputs: torch.Tensor, batch: dict, num_classes: int,
              ignore_index: int = -100):
    """(loss, sums) of a train step of `task` on a batch of numpy targets, as cnn_jax's task
    computes them: classification, the mean cross-entropy, and sums of the loss, top-1 and top-5
    hits and the count; segmentation (NCHW logits), the per-pixel cross-entropy over the pixels
    that are not `ignore_index`, and sums of the loss, the pixel count and the confusion matrix;
    detection, YOLOv1's `yolo_loss`, and the loss times the images. `sums()` gives the sums; call
    it under `torch.no_grad()`."""
    if task == "detection":
        loss = yolo_loss(outputs, torch.from_numpy(batch["boxes"]), torch.from_numpy(batch["classes"]),
                         torch.from_numpy(batch["box_mask"]), tuple(batch["image"].shape[2:]))
        return loss, lambda: [loss.detach() * len(batch["image"])]
    if task == "segmentation":
        y = torch.from_numpy(batch["segmentation"])
        per_pixel = F.cross_entropy(outputs, y, ignore_index=ignore_index, reduction="none")
        valid = y != ignore_index
        count, loss_sum = valid.sum(), per_pixel.sum()

        def segmentation_sums():
            pairs = torch.where(valid, y * num_classes + outputs.argmax(1), num_classes**2)
            confusion = torch.bincount(pairs.flatten(), minlength=num_classes**2 + 1)
            return [loss_sum.detach(), count.float(), confusion[:num_classes**2]]

        return loss_sum / count.clamp(min=1), segmentation_sums
    y = torch.from_numpy(batch["label"])
    per_example = F.cross_entropy(outputs, y, reduction="none")

    def classification_sums():
        hits = outputs.topk(5, dim=1).indices == y[:, None]
        return [per_example.sum(), hits[:, 0].sum().float(), hits.any(1).sum().float(),
                torch.tensor(float(len(y)))]

    return per_example.mean(), classification_sums


def create_torch_model(name: str, num_classes: int = 10, input_shape: tuple[int, ...] = (),
                       **kwargs) -> nn.Module:
    """The twin of the registered cnn_jax model `name`, built with the model's config kwargs
    (U-Net's base_width, padding, batch_norm); `input_shape` (one example, channels last) sizes
    the fully connected layers of C3D and YOLOv1."""
    if name in ("lenet5", "lenet5_modern"):
        return LeNet5(num_classes, modern=name == "lenet5_modern")
    if name.startswith("resnet") and name[6:].isdigit() and (int(name[6:]) - 2) % 6 == 0:
        return CifarResNet((int(name[6:]) - 2) // 6, num_classes)
    alphas = {"mobilenet_v1": 1.0, "mobilenet_v1_075": 0.75, "mobilenet_v1_050": 0.5, "mobilenet_v1_025": 0.25}
    if name in alphas:
        return MobileNetV1(alphas[name], num_classes)
    channels = input_shape[-1] if input_shape else 1
    if name == "unet":
        if kwargs.pop("padding", "valid") != "same":
            raise ValueError("the U-Net twin has padding='same' only: set model.kwargs.padding")
        return UNet(num_classes, in_channels=channels, **kwargs)
    if name == "c3d_small":
        return C3D(num_classes, width=0.125, fc_features=256, in_channels=channels,
                   clip_shape=tuple(input_shape[:3]) or (16, 64, 64), **kwargs)
    if name == "tcn_seq_mnist":
        return TCN(num_classes, in_channels=channels, **kwargs)
    if name == "yolov1_small":
        return YOLOv1(num_classes, in_channels=channels,
                      image_shape=tuple(input_shape[:2]) or (64, 64), **kwargs)
    raise ValueError(f"no PyTorch twin for {name!r}: add it to experiments/_torch_models.py")


def torch_optimizer(model: nn.Module, cfg, steps_per_epoch: int, num_epochs: int):
    """(optimizer, scheduler) for `config.optimizer` of the sgd recipes the shipped configs use.

    Weight decay is coupled and applies to conv/linear weights only (cnn_jax's default
    decay_regex: kernels); the scheduler is meant to be stepped once per iteration, as the
    optax schedule is evaluated once per step.
    """
    if cfg.name not in ("sgd", "adam") or cfg.grad_clip_norm or cfg.l1 or cfg.freeze_regex or cfg.lr_multipliers:
        raise ValueError(f"torch_optimizer rebuilds plain sgd/adam recipes only, not {cfg.name!r} with extras")
    decay = [p for n, p in model.named_parameters() if n.endswith("weight") and p.ndim > 1]
    rest = [p for n, p in model.named_parameters() if not (n.endswith("weight") and p.ndim > 1)]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": rest, "weight_decay": 0.0}]
    if cfg.name == "sgd":
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=bool(cfg.nesterov))
    else:
        opt = torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.b1, cfg.b2), eps=cfg.eps)
    total = max(1, steps_per_epoch * num_epochs)
    if cfg.schedule == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    elif cfg.schedule == "step":
        milestones = [int(round(e * steps_per_epoch)) for e in cfg.decay_epochs]
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=cfg.decay_factor)
    elif cfg.schedule == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, total_steps=total, pct_start=cfg.pct_start, div_factor=cfg.div_factor,
            final_div_factor=cfg.final_div_factor, anneal_strategy="cos", cycle_momentum=False)
    elif cfg.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    else:
        raise ValueError(f"no torch scheduler for optimizer.schedule={cfg.schedule!r}")
    return opt, sched


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["C3D", "TCN", "CifarResNet", "LeNet5", "MobileNetV1", "UNet", "YOLOv1", "count_parameters",
           "create_torch_model", "task_loss", "torch_optimizer", "yolo_loss"]
