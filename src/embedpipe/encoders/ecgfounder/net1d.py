"""ECGFounder's backbone (Net1D), written from its published description, under its checkpoint names.

Pre-activation bottleneck blocks (1×1 → grouped k=16 → 1×1, Swish between), squeeze-excitation,
and a shortcut that is max-pooled when the block downsamples and zero-padded (centred) when the
width grows. Every convolution pads "SAME" (TensorFlow's rule: the extra pad goes right). The
released models were trained with batch norm and dropout off; their checkpoints still hold the
BatchNorm modules' tensors, so the modules exist here (unused) and `strict=True` loading works.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ECGFOUNDER = {"base_filters": 64, "ratio": 1.0, "filter_list": (64, 160, 160, 400, 400, 1024, 1024),
              "m_blocks_list": (2, 2, 2, 3, 3, 4, 4), "kernel_size": 16, "stride": 2, "groups_width": 16,
              "n_classes": 150}


def same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    length = x.shape[-1]
    out = (length + stride - 1) // stride
    total = max(0, (out - 1) * stride + kernel - length)
    return F.pad(x, (total // 2, total - total // 2))


class SameConv1d(nn.Module):
    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride
        self.conv = nn.Conv1d(cin, cout, kernel, stride=stride, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(same_pad(x, self.kernel, self.stride))


class Net1DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, ratio: float, kernel: int, stride: int, groups: int,
                 first_of_network: bool) -> None:
        super().__init__()
        mid = int(cout * ratio)
        self.cin, self.cout, self.stride, self.first_of_network = cin, cout, stride, first_of_network
        self.bn1, self.bn2, self.bn3 = nn.BatchNorm1d(cin), nn.BatchNorm1d(mid), nn.BatchNorm1d(mid)
        self.conv1 = SameConv1d(cin, mid, 1)
        self.conv2 = SameConv1d(mid, mid, kernel, stride, groups)
        self.conv3 = SameConv1d(mid, cout, 1)
        self.se_fc1 = nn.Linear(cout, cout // 2)
        self.se_fc2 = nn.Linear(cout // 2, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.first_of_network else F.silu(x)  # the network's first block takes the stem's output
        out = self.conv3(F.silu(self.conv2(F.silu(self.conv1(out)))))
        scale = torch.sigmoid(self.se_fc2(F.silu(self.se_fc1(out.mean(-1)))))
        out = out * scale.unsqueeze(-1)
        shortcut = x
        if self.stride > 1:  # SAME max-pool with kernel = stride: pad on the right only
            shortcut = F.max_pool1d(F.pad(shortcut, (0, self.stride - 1)), self.stride)
        if self.cout != self.cin:
            grow = self.cout - self.cin
            shortcut = F.pad(shortcut, (0, 0, grow // 2, grow - grow // 2))
        return out + shortcut


class Net1DStage(nn.Module):
    def __init__(self, cin: int, cout: int, blocks: int, first_stage: bool, **block) -> None:
        super().__init__()
        self.block_list = nn.ModuleList(
            Net1DBlock(cin if b == 0 else cout, cout, stride=block["stride"] if b == 0 else 1,
                       first_of_network=first_stage and b == 0,
                       **{k: v for k, v in block.items() if k != "stride"})
            for b in range(blocks)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.block_list:
            x = block(x)
        return x


class Net1D(nn.Module):
    """`[B, leads, n]` → last-stage map `[B, filter_list[-1], output_length(n)]` (features())."""

    def __init__(self, in_channels: int = 12, base_filters: int = 64, ratio: float = 1.0,
                 filter_list: tuple[int, ...] = ECGFOUNDER["filter_list"],
                 m_blocks_list: tuple[int, ...] = ECGFOUNDER["m_blocks_list"], kernel_size: int = 16,
                 stride: int = 2, groups_width: int = 16, n_classes: int = 150) -> None:
        super().__init__()
        self.first_conv = SameConv1d(in_channels, base_filters, kernel_size, stride=2)
        self.first_bn = nn.BatchNorm1d(base_filters)
        stages, cin = [], base_filters
        for i, (cout, blocks) in enumerate(zip(filter_list, m_blocks_list, strict=True)):
            stages.append(Net1DStage(cin, cout, blocks, first_stage=i == 0, ratio=ratio, kernel=kernel_size,
                                     stride=stride, groups=cout // groups_width))
            cin = cout
        self.stage_list = nn.ModuleList(stages)
        self.dense = nn.Linear(cin, n_classes)

    @staticmethod
    def geometry(state: dict[str, torch.Tensor]) -> dict:
        """Constructor arguments read off a checkpoint, so the released model and a small test build both load."""
        stages = sorted({int(k.split(".")[1]) for k in state if k.startswith("stage_list.")})
        filters, blocks, first = [], [], state["first_conv.conv.weight"]  # [base, leads, kernel]
        for s in stages:
            prefix = f"stage_list.{s}.block_list."
            blocks.append(len({k[len(prefix):].split(".")[0] for k in state if k.startswith(prefix)}))
            filters.append(state[f"{prefix}0.conv3.conv.weight"].shape[0])
        conv2 = state["stage_list.0.block_list.0.conv2.conv.weight"]  # [mid, mid / groups, kernel]
        mid = conv2.shape[0]
        return {"in_channels": first.shape[1], "base_filters": first.shape[0], "ratio": mid / filters[0],
                "filter_list": tuple(filters), "m_blocks_list": tuple(blocks), "kernel_size": first.shape[2],
                "stride": 2, "groups_width": filters[0] // (mid // conv2.shape[1]),
                "n_classes": state["dense.weight"].shape[0]}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.silu(self.first_conv(x))
        for stage in self.stage_list:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, as the checkpoint's head computes them (not used for embeddings)."""
        return self.dense(self.features(x).mean(-1))
