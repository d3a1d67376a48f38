"""PyTorch references of ResNet-50 (torchvision layout) and BN-Inception (Cadene layout).

Written here, from the papers and the reference code's layer lists, independently of the Flax
modules; the tests give both the same random weights and compare eval-mode outputs. Imported only
after `pytest.importorskip("torch")`.
"""

import torch
from torch import nn


class Bottleneck(nn.Module):
  """torchvision's Bottleneck (stride on the 3x3 conv)."""

  def __init__(self, inplanes, planes, stride=1, downsample=False, groups=1, base_width=64):
    super().__init__()
    width = int(planes * (base_width / 64.0)) * groups
    self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    self.conv2 = nn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
    self.bn2 = nn.BatchNorm2d(width)
    self.conv3 = nn.Conv2d(width, planes * 4, 1, bias=False)
    self.bn3 = nn.BatchNorm2d(planes * 4)
    self.relu = nn.ReLU()
    self.downsample = None
    if downsample:
      self.downsample = nn.Sequential(
          nn.Conv2d(inplanes, planes * 4, 1, stride, bias=False), nn.BatchNorm2d(planes * 4))

  def forward(self, x):
    identity = x if self.downsample is None else self.downsample(x)
    out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    return self.relu(out + identity)


class ResNet50(nn.Module):
  """ResNet-50 with torchvision's module names; `features` returns the average-pooled 2048-d."""

  def __init__(self, num_classes=1000):
    super().__init__()
    self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
    self.bn1 = nn.BatchNorm2d(64)
    self.relu = nn.ReLU()
    self.maxpool = nn.MaxPool2d(3, 2, 1)
    inplanes = 64
    for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3))):
      stride = 1 if i == 0 else 2
      layer = []
      for j in range(blocks):
        layer.append(Bottleneck(inplanes, planes, stride if j == 0 else 1, downsample=(j == 0)))
        inplanes = planes * 4
      setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
    self.avgpool = nn.AdaptiveAvgPool2d(1)
    self.fc = nn.Linear(2048, num_classes)

  def features(self, x):
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return torch.flatten(self.avgpool(x), 1)


# Cadene's bninception: (module, in channels, 1x1, 3x3 reduce, 3x3, double reduce, double,
# pool kind, pool proj); 3c and 4e are the stride-2 modules without 1x1 and pool-proj branches.
_CADENE = (
    ("3a", 192, 64, 64, 64, 64, 96, "avg", 32),
    ("3b", 256, 64, 64, 96, 64, 96, "avg", 64),
    ("3c", 320, None, 128, 160, 64, 96, "max_s2", None),
    ("4a", 576, 224, 64, 96, 96, 128, "avg", 128),
    ("4b", 576, 192, 96, 128, 96, 128, "avg", 128),
    ("4c", 576, 160, 128, 160, 128, 160, "avg", 128),
    ("4d", 608, 96, 128, 192, 160, 192, "avg", 128),
    ("4e", 608, None, 128, 192, 192, 256, "max_s2", None),
    ("5a", 1056, 352, 192, 320, 160, 224, "avg", 128),
    ("5b", 1024, 352, 192, 320, 192, 224, "max_s1", 128),
)


class BNInception(nn.Module):
  """Cadene's BNInception: flat module names, conv (with bias) -> BN -> ReLU everywhere."""

  def __init__(self, num_classes=1000):
    super().__init__()
    self._units = []
    self._add("conv1_7x7_s2", 3, 64, 7, 2, 3)
    self._add("conv2_3x3_reduce", 64, 64, 1)
    self._add("conv2_3x3", 64, 192, 3, 1, 1)
    for tag, cin, n1, n3r, n3, nd3r, nd3, pool, proj in _CADENE:
      p = f"inception_{tag}"
      stride = 2 if pool == "max_s2" else 1
      if n1:
        self._add(f"{p}_1x1", cin, n1, 1)
      self._add(f"{p}_3x3_reduce", cin, n3r, 1)
      self._add(f"{p}_3x3", n3r, n3, 3, stride, 1)
      self._add(f"{p}_double_3x3_reduce", cin, nd3r, 1)
      self._add(f"{p}_double_3x3_1", nd3r, nd3, 3, 1, 1)
      self._add(f"{p}_double_3x3_2", nd3, nd3, 3, stride, 1)
      if proj:
        self._add(f"{p}_pool_proj", cin, proj, 1)
    self.last_linear = nn.Linear(1024, num_classes)
    self.pool_ceil = nn.MaxPool2d(3, 2, ceil_mode=True)
    self.avg_3x3 = nn.AvgPool2d(3, 1, 1, ceil_mode=True, count_include_pad=True)
    self.max_3x3 = nn.MaxPool2d(3, 1, 1, ceil_mode=True)

  def _add(self, name, cin, cout, k, stride=1, pad=0):
    setattr(self, name, nn.Conv2d(cin, cout, k, stride, pad))
    setattr(self, f"{name}_bn", nn.BatchNorm2d(cout, eps=1e-5))

  def _cbr(self, name, x):
    return torch.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))

  def features(self, x):
    x = self.pool_ceil(self._cbr("conv1_7x7_s2", x))
    x = self._cbr("conv2_3x3", self._cbr("conv2_3x3_reduce", x))
    x = self.pool_ceil(x)
    for tag, _, n1, _, _, _, _, pool, _ in _CADENE:
      p = f"inception_{tag}"
      outs = []
      if n1:
        outs.append(self._cbr(f"{p}_1x1", x))
      outs.append(self._cbr(f"{p}_3x3", self._cbr(f"{p}_3x3_reduce", x)))
      y = self._cbr(f"{p}_double_3x3_1", self._cbr(f"{p}_double_3x3_reduce", x))
      outs.append(self._cbr(f"{p}_double_3x3_2", y))
      if pool == "max_s2":
        outs.append(self.pool_ceil(x))
      else:
        pooled = self.avg_3x3(x) if pool == "avg" else self.max_3x3(x)
        outs.append(self._cbr(f"{p}_pool_proj", pooled))
      x = torch.cat(outs, 1)
    return x


def randomize_(model: nn.Module, seed: int) -> None:
  """Random weights and non-trivial BatchNorm statistics, scaled to keep activations O(1)."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for module in model.modules():
      if isinstance(module, nn.BatchNorm2d):
        c = module.num_features
        module.weight.copy_(0.3 + 0.4 * torch.rand(c, generator=gen))
        module.bias.copy_(0.1 * torch.randn(c, generator=gen))
        module.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
        module.running_var.copy_(0.5 + torch.rand(c, generator=gen))
      elif isinstance(module, (nn.Conv2d, nn.Linear)):
        fan_in = module.weight[0].numel()
        module.weight.copy_(torch.randn(module.weight.shape, generator=gen) / fan_in**0.5)
        if module.bias is not None:
          module.bias.copy_(0.1 * torch.randn(module.bias.shape, generator=gen))
