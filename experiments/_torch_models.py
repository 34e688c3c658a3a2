"""PyTorch twins of the cnn_jax models the speed benchmarks race against (benchmarks only).

Same layers, shapes, parameter counts, initial-weight scales and BatchNorm conventions as
`cnn_jax.models` (LeNet-5, CIFAR ResNet-20 with option A shortcuts, MobileNet v1 with width
multiplier alpha), written the way a PyTorch user would: NCHW, `nn.Module`s, `torch.optim`.
`tests/test_benchmarks.py` checks that each twin has exactly the parameter count of its cnn_jax
model, so the two sides of a benchmark do the same arithmetic.

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


def create_torch_model(name: str, num_classes: int = 10) -> nn.Module:
    """The twin of the registered cnn_jax model `name`."""
    if name in ("lenet5", "lenet5_modern"):
        return LeNet5(num_classes, modern=name == "lenet5_modern")
    if name.startswith("resnet") and name[6:].isdigit() and (int(name[6:]) - 2) % 6 == 0:
        return CifarResNet((int(name[6:]) - 2) // 6, num_classes)
    alphas = {"mobilenet_v1": 1.0, "mobilenet_v1_075": 0.75, "mobilenet_v1_050": 0.5, "mobilenet_v1_025": 0.25}
    if name in alphas:
        return MobileNetV1(alphas[name], num_classes)
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


__all__ = ["CifarResNet", "LeNet5", "MobileNetV1", "count_parameters", "create_torch_model", "torch_optimizer"]
