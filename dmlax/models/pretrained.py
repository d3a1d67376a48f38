"""Import ImageNet weights from PyTorch state dicts into the backbones' Flax variables.

Layouts read: torchvision's `resnet18`, `resnet50`, `resnext50_32x4d`, `vgg16_bn`, and Cadene's
`pretrainedmodels.bninception` (the file the ProxyAnchor/SoftTriple repositories load), from
`.pth`/`.pt` (through PyTorch, `weights_only=True`, when it is installed), `.safetensors` (numpy
API, no PyTorch needed) or `.npz` (one array per state-dict key). An `.npz` whose keys start with
`params/` or `batch_stats/` is read as an already converted Flax tree
(`experiments/convert_weights.py` writes those).

Key rule: a state-dict key `a.0.b.weight` is the Flax module path `a_0/b` (a number joins the
name before it), which is how the backbones name their modules. Conv weights (O, I/g, kh, kw)
become kernels (kh, kw, I/g, O); linear weights (O, I) become (I, O); BatchNorm `weight`, `bias`,
`running_mean`, `running_var` become `scale`, `bias` (params) and `mean`, `var` (batch_stats).
`num_batches_tracked` and the ImageNet classifier (`fc`, `classifier.6`, `last_linear`) are
dropped: the backbones end before it. With RBR, the removed BatchNorm's weights are dropped too.
Anything else missing, unexpected or of the wrong shape raises a ValueError that lists it.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import flax
import jax
import jax.numpy as jnp
import numpy as np

from dmlax.models import registry

_CLASSIFIER_PREFIXES = {
    "resnet18": ("fc.",),
    "resnet50": ("fc.",),
    "resnext50_32x4d": ("fc.",),
    "vgg16_bn": ("classifier.6.",),
    "bn_inception": ("last_linear.",),
}
PRETRAINED_NAMES = tuple(_CLASSIFIER_PREFIXES)
# Where each backbone's ImageNet state dict comes from (the input of experiments.convert_weights).
SOURCES = {
    "resnet18": "torchvision's ImageNet checkpoint of resnet18",
    "resnet50": "torchvision's ImageNet checkpoint of resnet50",
    "resnext50_32x4d": "torchvision's ImageNet checkpoint of resnext50_32x4d",
    "vgg16_bn": "torchvision's ImageNet checkpoint of vgg16_bn",
    "bn_inception": "Cadene's pretrainedmodels bn_inception-52deb4733.pth",
}


def how_to_get(name: str, path: str | os.PathLike) -> str:
  """The command that writes `path`, the converted ImageNet weights of backbone `name`."""
  source = SOURCES.get(name, f"an ImageNet state dict of {name}")
  return (f"convert {source} (.pth, .safetensors or .npz) with `python -m "
          f"experiments.convert_weights --model {name} --input FILE --output {os.fspath(path)}`")
_BN_LEAVES = {"weight": ("params", "scale"), "bias": ("params", "bias"),
              "running_mean": ("batch_stats", "mean"), "running_var": ("batch_stats", "var")}


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a state dict (key -> array) from .pth/.pt, .safetensors or .npz."""
  path = os.fspath(path)
  if not os.path.exists(path):
    raise ValueError(f"pretrained weights file not found: {path}")
  suffix = os.path.splitext(path)[1].lower()
  if suffix in (".pth", ".pt"):
    try:
      import torch  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ValueError(f"reading {path} needs PyTorch; convert it to .safetensors or .npz on a "
                       "machine that has it, or install torch") from e
    raw = torch.load(path, map_location="cpu", weights_only=True)
    for wrapper in ("state_dict", "model"):
      if isinstance(raw, Mapping) and wrapper in raw and isinstance(raw[wrapper], Mapping):
        raw = raw[wrapper]
    state = {k: v.detach().cpu().numpy() for k, v in raw.items() if hasattr(v, "detach")}
  elif suffix == ".safetensors":
    from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
    state = dict(load_file(path))
  elif suffix == ".npz":
    with np.load(path) as data:
      state = {k: data[k] for k in data.files}
  else:
    raise ValueError(f"unsupported weights file {path!r}: use .pth, .pt, .safetensors or .npz")
  # Checkpoints saved from nn.DataParallel prefix every key with "module.".
  return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def _module_path(prefix: str) -> tuple[str, ...]:
  parts: list[str] = []
  for part in prefix.split("."):
    if re.fullmatch(r"\d+", part) and parts:
      parts[-1] = f"{parts[-1]}_{part}"
    else:
      parts.append(part)
  return tuple(parts)


def _convert(state: Mapping[str, np.ndarray], squeeze_leading: bool):
  """Torch keys -> {(collection, *path, leaf): array}, plus the torch key of each entry."""
  modules: dict[str, dict[str, np.ndarray]] = {}
  for key, value in state.items():
    prefix, _, leaf = key.rpartition(".")
    if leaf == "num_batches_tracked":
      continue
    value = np.asarray(value)
    if squeeze_leading and value.ndim > 1 and value.shape[0] == 1:
      # Cadene's BN-Inception file stores BatchNorm vectors as (1, C); its loader squeezes them.
      value = value[0]
    modules.setdefault(prefix, {})[leaf] = value
  flat, origin = {}, {}
  for prefix, leaves in modules.items():
    path = _module_path(prefix)
    is_bn = "running_mean" in leaves or "running_var" in leaves
    for leaf, value in leaves.items():
      torch_key = f"{prefix}.{leaf}"
      if is_bn and leaf in _BN_LEAVES:
        collection, name = _BN_LEAVES[leaf]
      elif leaf == "weight" and value.ndim == 4:
        collection, name, value = "params", "kernel", value.transpose(2, 3, 1, 0)
      elif leaf == "weight" and value.ndim == 2:
        collection, name, value = "params", "kernel", value.T
      elif leaf == "bias":
        collection, name = "params", "bias"
      else:
        collection, name = "unknown", leaf
      target = (collection, *path, name)
      flat[target] = np.ascontiguousarray(value, dtype=np.float32)
      origin[target] = torch_key
  return flat, origin


def _expected(name: str, **model_kwargs) -> dict[tuple[str, ...], tuple[int, ...]]:
  backbone = registry.get_model(name, **model_kwargs).backbone
  shapes = jax.eval_shape(
      lambda: backbone.init(jax.random.key(0), jnp.zeros((1, 64, 64, 3)), train=False))
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(shapes))
  return {k: tuple(v.shape) for k, v in flat.items()}


def _fmt(path: tuple[str, ...]) -> str:
  return "/".join(path)


def state_dict_to_variables(name: str, state_dict: Mapping[str, np.ndarray], *, rbr: bool = False,
                            include_fc: bool = True) -> dict[str, Any]:
  """Converts a state dict into the backbone's `{"params": ..., "batch_stats": ...}`.

  Example:
    >>> # sd = torchvision_model.state_dict(); v = state_dict_to_variables("resnet50", sd)
    >>> # model.apply({"params": {"backbone": v["params"], "head": ...}, ...})
  """
  if name not in _CLASSIFIER_PREFIXES:
    raise ValueError(f"no pretrained layout for {name!r}; known: {', '.join(PRETRAINED_NAMES)}")
  model_kwargs: dict[str, Any] = {"rbr": rbr}
  dropped = list(_CLASSIFIER_PREFIXES[name])
  if name == "vgg16_bn":
    model_kwargs["include_fc"] = include_fc
    if not include_fc:
      dropped = ["classifier."]
  expected = _expected(name, **model_kwargs)
  keys = list(state_dict)
  if keys and all(k.startswith(("params/", "batch_stats/")) for k in keys):
    flat = {tuple(k.split("/")): np.asarray(v, np.float32) for k, v in state_dict.items()}
    origin = {k: _fmt(k) for k in flat}
  else:
    kept = {k: v for k, v in state_dict.items() if not k.startswith(tuple(dropped))}
    flat, origin = _convert(kept, squeeze_leading=(name == "bn_inception"))
  if rbr:
    removed = set(_expected(name, **{**model_kwargs, "rbr": False})) - set(expected)
    flat = {k: v for k, v in flat.items() if k not in removed}
  missing = sorted(_fmt(k) for k in expected if k not in flat)
  unexpected = sorted(origin[k] for k in flat if k not in expected)
  misshaped = sorted(f"{origin[k]} -> {_fmt(k)}: got {flat[k].shape}, expected {expected[k]}"
                     for k in flat if k in expected and flat[k].shape != expected[k])
  if missing or unexpected or misshaped:
    lines = [f"pretrained weights do not fit {name!r} (rbr={rbr}):"]
    for title, items in (("missing", missing), ("unexpected", unexpected),
                         ("mis-shaped", misshaped)):
      if items:
        lines.append(f"  {title} ({len(items)}): " + ", ".join(items))
    raise ValueError("\n".join(lines))
  tree = flax.traverse_util.unflatten_dict({k: jnp.asarray(v) for k, v in flat.items()})
  return {"params": tree.get("params", {}), "batch_stats": tree.get("batch_stats", {})}


def load_pretrained(name: str, path: str | os.PathLike, *,
                    variables: Mapping[str, Any] | None = None, rbr: bool = False,
                    include_fc: bool = True) -> dict[str, Any]:
  """Loads ImageNet weights for backbone `name` from `path`.

  Args:
    name: one of `PRETRAINED_NAMES`.
    path: .pth/.pt, .safetensors or .npz file (see the module docstring).
    variables: the full model's variables (`model.init(...)`); if given, their "backbone"
      subtrees are replaced and the head is kept.
    rbr, include_fc: as given to `get_model`; they decide which layers the backbone has.

  Returns:
    The backbone's `{"params", "batch_stats"}`, or `variables` with the backbone replaced.

  Example:
    >>> # model = get_model("resnet50", pooling="gem", bn_neck=True)
    >>> # v = model.init(key, jnp.zeros((1, 224, 224, 3)), train=False)
    >>> # v = load_pretrained("resnet50", "resnet50-11ad3fa6.pth", variables=v)
  """
  if not os.path.exists(os.fspath(path)):
    raise ValueError(f"pretrained weights file not found: {os.fspath(path)}; "
                     f"{how_to_get(name, path)}")
  backbone = state_dict_to_variables(name, read_state_dict(path), rbr=rbr,
                                     include_fc=include_fc)
  if variables is None:
    return backbone
  out = {k: dict(v) for k, v in flax.core.unfreeze(variables).items()}
  for collection in ("params", "batch_stats"):
    given = out.get(collection, {}).get("backbone")
    if given is not None:
      want = jax.tree_util.tree_map(jnp.shape, given)
      got = jax.tree_util.tree_map(jnp.shape, backbone[collection])
      if want != got:
        raise ValueError(f"variables[{collection!r}]['backbone'] does not have the structure of "
                         f"{name!r} with rbr={rbr}: pass the same rbr/include_fc as get_model")
    out.setdefault(collection, {})["backbone"] = backbone[collection]
  return out


def save_converted(variables: Mapping[str, Any], path: str | os.PathLike) -> None:
  """Writes backbone variables `{"params", "batch_stats"}` as a Flax-layout `.npz`.

  Keys are "/"-joined paths (`params/conv1/kernel`); `load_pretrained` reads the file back and
  checks it against the model like any other source.

  Example:
    >>> # save_converted(load_pretrained("resnet50", "resnet50.pth"), "resnet50_flax.npz")
  """
  path = os.fspath(path)
  if not path.endswith(".npz"):
    raise ValueError(f"converted checkpoints are .npz files, got {path!r}")
  flat = flax.traverse_util.flatten_dict(
      {k: flax.core.unfreeze(variables[k]) for k in ("params", "batch_stats") if k in variables})
  np.savez(path, **{_fmt(k): np.asarray(v, np.float32) for k, v in flat.items()})
