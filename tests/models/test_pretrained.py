"""Pretrained-weight import: PyTorch references agree with the imported Flax models."""

import os
import subprocess
import sys

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import models
from dmlax.models import pretrained

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _torch():
  return pytest.importorskip(
      "torch", reason="PyTorch not installed: the PyTorch-reference checks are skipped "
      "(install torch==2.13.0 into .venv to run them)")


def _torch_case(name, seed, tmp_path, suffix=".pth"):
  torch = _torch()
  from tests.models import torch_reference  # pylint: disable=g-import-not-at-top
  net = {"resnet50": torch_reference.ResNet50, "bn_inception": torch_reference.BNInception}[name]()
  torch_reference.randomize_(net, seed)
  net.eval()
  state = net.state_dict()
  if name == "bn_inception":
    # Cadene's file stores BatchNorm vectors as (1, C): import must undo that.
    state = {k: (v[None] if k.endswith(("_bn.weight", "_bn.bias", "running_mean",
                                        "running_var")) else v) for k, v in state.items()}
  path = tmp_path / f"{name}{suffix}"
  if suffix == ".pth":
    torch.save(state, path)
  else:
    from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
    save_file({k: v.numpy() for k, v in state.items()}, str(path))
  return torch, net, path


def test_imported_resnet50_matches_pytorch_reference(tmp_path):
  name, size = "resnet50", 64
  torch, net, path = _torch_case(name, seed=0, tmp_path=tmp_path)
  images = np.random.default_rng(1).normal(size=(2, size, size, 3)).astype(np.float32)
  with torch.no_grad():
    ref = net.features(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy()
  model = models.get_model(name, pooling="avg")
  variables = models.load_pretrained(name, path)
  out = jax.jit(lambda v, x: model.apply(v, x, train=False))(
      {"params": {"backbone": variables["params"]},
       "batch_stats": {"backbone": variables["batch_stats"]}}, jnp.asarray(images))
  assert float(np.abs(ref).max()) > 0.1  # the comparison is not between near-zero vectors
  chex.assert_trees_all_close(np.asarray(out), ref, atol=1e-4, rtol=0)


def test_imported_bn_inception_matches_pytorch_reference(tmp_path):
  """The inception_5b map; at 96 px every ceil-mode max pool rounds up (48 -> 24, 12 -> 6 ...)."""
  torch, net, path = _torch_case("bn_inception", seed=2, tmp_path=tmp_path, suffix=".safetensors")
  images = np.random.default_rng(3).normal(size=(1, 96, 96, 3)).astype(np.float32)
  with torch.no_grad():
    ref = net.features(torch.from_numpy(images.transpose(0, 3, 1, 2))).numpy().transpose(0, 2, 3, 1)
  v = models.load_pretrained("bn_inception", path)
  torch_count = sum(p.numel() for k, p in net.named_parameters() if not k.startswith("last_"))
  assert torch_count == sum(x.size for x in jax.tree_util.tree_leaves(v["params"])) == 10_270_240
  backbone = models.get_model("bn_inception").backbone
  out = jax.jit(lambda v, x: backbone.apply(v, x, train=False))(v, jnp.asarray(images))
  chex.assert_shape(out, ref.shape)
  assert float(np.abs(ref).max()) > 0.1
  chex.assert_trees_all_close(np.asarray(out), ref, atol=1e-4, rtol=0)


def test_pth_and_safetensors_give_the_same_variables(tmp_path):
  torch = _torch()
  from tests.models import torch_reference  # pylint: disable=g-import-not-at-top
  net = torch_reference.ResNet50()
  pth, st = tmp_path / "r50.pth", tmp_path / "r50.safetensors"
  torch.save(net.state_dict(), pth)
  from safetensors.numpy import save_file  # pylint: disable=g-import-not-at-top
  save_file({k: v.numpy() for k, v in net.state_dict().items()}, str(st))
  chex.assert_trees_all_equal(models.load_pretrained("resnet50", pth),
                              models.load_pretrained("resnet50", st))
  # RBR drops exactly the final block's bn3 from the import.
  rbr = models.load_pretrained("resnet50", st, rbr=True)
  assert "bn3" not in rbr["params"]["layer4_2"] and "bn3" in rbr["params"]["layer4_1"]
  del torch


def _random_variables(model, seed):
  """Variables of `model` filled with random numbers, without running the model."""
  shapes = jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)), train=False))
  leaves, treedef = jax.tree_util.tree_flatten(shapes)
  rng = np.random.default_rng(seed)
  return jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(rng.normal(size=l.shape), jnp.float32) for l in leaves])


def _converted_resnet18(tmp_path):
  v = _random_variables(models.get_model("resnet18"), 0)
  backbone = {"params": v["params"]["backbone"], "batch_stats": v["batch_stats"]["backbone"]}
  path = tmp_path / "r18.npz"
  models.save_converted(backbone, path)
  return backbone, path


def test_converted_npz_round_trip_and_merge(tmp_path):
  backbone, path = _converted_resnet18(tmp_path)
  chex.assert_trees_all_equal(models.load_pretrained("resnet18", path), backbone)
  # Merged into the variables of a model with a head, the head is kept.
  fresh = _random_variables(models.get_model("resnet18", embedding_dim=8), 1)
  merged = models.load_pretrained("resnet18", path, variables=fresh)
  chex.assert_trees_all_equal(merged["params"]["backbone"], backbone["params"])
  chex.assert_trees_all_equal(merged["params"]["head"], fresh["params"]["head"])
  with pytest.raises(ValueError, match="same rbr"):
    models.load_pretrained("resnet18", path,
                           variables=_random_variables(models.get_model("resnet50"), 2))


def test_bad_weights_list_missing_unexpected_and_misshaped(tmp_path):
  _, path = _converted_resnet18(tmp_path)
  with np.load(path) as data:
    arrays = {k: data[k] for k in data.files}
  del arrays["params/layer2_0/conv1/kernel"]
  arrays["params/layer9_0/conv1/kernel"] = np.zeros((1, 1, 1, 1), np.float32)
  arrays["batch_stats/bn1/mean"] = np.zeros((65,), np.float32)
  bad = tmp_path / "bad.npz"
  np.savez(bad, **arrays)
  with pytest.raises(ValueError) as err:
    models.load_pretrained("resnet18", bad)
  msg = str(err.value)
  assert "missing (1): params/layer2_0/conv1/kernel" in msg
  assert "unexpected (1): params/layer9_0/conv1/kernel" in msg
  assert "mis-shaped (1)" in msg and "bn1/mean" in msg and "(65,)" in msg


def test_torch_layout_key_rule_and_classifier_drop():
  """The torchvision key rule on a hand-made VGG state dict (no PyTorch needed)."""
  rng = np.random.default_rng(0)
  expected = pretrained._expected("vgg16_bn", include_fc=False)  # pylint: disable=protected-access
  state = {}
  for path, shape in expected.items():
    collection, *module, leaf = path
    key = ".".join(module).replace("_", ".")
    if collection == "batch_stats":
      state[f"{key}.running_{leaf}"] = rng.random(shape).astype(np.float32)
      state[f"{key}.num_batches_tracked"] = np.array(3)
    elif leaf == "kernel":
      state[f"{key}.weight"] = rng.normal(size=shape).transpose(3, 2, 0, 1).astype(np.float32)
    else:
      state[f"{key}.{'weight' if leaf == 'scale' else 'bias'}"] = rng.normal(size=shape)
  state["classifier.0.weight"] = np.zeros((4096, 25088), np.float32)  # dropped: include_fc=False
  out = pretrained.state_dict_to_variables("vgg16_bn", state, include_fc=False)
  np.testing.assert_array_equal(out["params"]["features_0"]["kernel"],
                                state["features.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(out["batch_stats"]["features_41"]["var"],
                                state["features.41.running_var"])
  flat = flax.traverse_util.flatten_dict(out)
  assert set(flat) == set(expected)


def test_unknown_name_and_format(tmp_path):
  with pytest.raises(ValueError, match="no pretrained layout"):
    pretrained.state_dict_to_variables("small_cnn", {})
  bad = tmp_path / "w.bin"
  bad.write_bytes(b"0")
  with pytest.raises(ValueError, match="unsupported weights file"):
    models.load_pretrained("resnet18", bad)


def _convert_weights(*args):
  """The README's command line, `python -m experiments.convert_weights ...`, from the repo."""
  return subprocess.run([sys.executable, "-m", "experiments.convert_weights", *args], cwd=REPO,
                        capture_output=True, text=True, timeout=300, check=False)


def test_convert_weights_script_writes_a_loadable_checkpoint(tmp_path):
  backbone, path = _converted_resnet18(tmp_path)
  out = tmp_path / "out" / "r18_flax.npz"
  proc = _convert_weights("--model", "resnet18", "--input", str(path), "--output", str(out))
  assert proc.returncode == 0, proc.stderr
  assert f"written to {out}" in proc.stdout
  chex.assert_trees_all_equal(models.load_pretrained("resnet18", out), backbone)
  # A positional argument (argparse habit) is a usage error naming it, nothing is written.
  other = tmp_path / "other.npz"
  proc = _convert_weights("resnet18", "--model", "resnet18", "--input", str(path),
                          "--output", str(other))
  assert proc.returncode != 0 and "unexpected arguments: ['resnet18']" in proc.stderr
  assert not other.exists()
