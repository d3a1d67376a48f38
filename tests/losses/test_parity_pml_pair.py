"""Parity of the miners, distances, pair/contrastive losses and cross-batch memory with
pytorch-metric-learning 2.9.0.

Run with ``DMLAX_PARITY=1 bash tests/run.sh tests/losses/test_parity_pml_pair.py``; skipped when
torch or pml is missing. Miners run in float64 on both sides (``enable_x64``) so that the
selected sets are compared without float32 rounding at the thresholds; losses run in float32
here and float64 in pml, agreeing to 1e-5. Losses that take mined pairs get pml's own mined
indices (as masks), so the loss and the miner are checked separately.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dmlax import losses
from dmlax import miners

torch = pytest.importorskip("torch", reason="parity needs torch==2.13.0 (DMLAX_PARITY=1)")
pml_losses = pytest.importorskip(
    "pytorch_metric_learning.losses",
    reason="parity needs pytorch-metric-learning==2.9.0 (DMLAX_PARITY=1)")
from pytorch_metric_learning import distances as pml_distances  # noqa: E402
from pytorch_metric_learning import miners as pml_miners  # noqa: E402

pytestmark = pytest.mark.parity

B, D, C = 24, 16, 5
TOL = dict(rtol=1e-5, atol=1e-5)
DISTANCES = ("cosine", "dot", "euclidean", "squared_euclidean")


def _pml_distance(name):
  return {"cosine": pml_distances.CosineSimilarity(),
          "dot": pml_distances.DotProductSimilarity(normalize_embeddings=False),
          "euclidean": pml_distances.LpDistance(),
          "squared_euclidean": pml_distances.LpDistance(power=2)}[name]


def _inputs(seed, b=B, scale=1.0):
  rng = np.random.default_rng(seed)
  x = (scale * rng.normal(size=(b, D))).astype(np.float32)
  y = rng.integers(0, C, size=b).astype(np.int64)
  return x, y


def _pair_masks(indices, shape):
  pos, neg = np.zeros(shape, bool), np.zeros(shape, bool)
  a1, p, a2, n = (np.asarray(i) for i in indices)
  pos[a1, p] = True
  neg[a2, n] = True
  return pos, neg


def _triplet_mask(indices, shape):
  mask = np.zeros((shape[0], shape[1], shape[1]), bool)
  a, p, n = (np.asarray(i) for i in indices)
  mask[a, p, n] = True
  return mask


def _pml(loss_fn, x, y, indices=None, params=()):
  xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
  yt = torch.tensor(y)
  value = loss_fn(xt, yt, indices) if indices is not None else loss_fn(xt, yt)
  value.backward()
  return float(value.detach()), [xt.grad.numpy()] + [p.grad.numpy() for p in params]


def _check(ours, theirs, name):
  value, grads = ours
  np.testing.assert_allclose(float(value), theirs[0], **TOL, err_msg=name)
  for g, t in zip(grads, theirs[1]):
    np.testing.assert_allclose(np.asarray(g, np.float64), t, **TOL, err_msg=name)


def _pml_miner_cases(distance):
  """(our miner call, pml miner) pairs; margins put the thresholds inside each distance's range."""
  lo, hi = {"cosine": (0.1, 0.3), "dot": (0.5, 2.0), "euclidean": (1.0, 1.3),
            "squared_euclidean": (1.2, 1.6)}[distance]
  dist = _pml_distance(distance)
  cases = {
      "ms": (lambda x, y, r=None: miners.multi_similarity_miner(
          x, y, epsilon=0.1, distance=distance, references=r),
             pml_miners.MultiSimilarityMiner(epsilon=0.1, distance=dist)),
      "pair_margin": (lambda x, y, r=None: miners.pair_margin_miner(
          x, y, pos_margin=lo, neg_margin=hi, distance=distance, references=r),
                      pml_miners.PairMarginMiner(pos_margin=lo, neg_margin=hi, distance=dist)),
      "batch_hard": (lambda x, y, r=None: miners.batch_hard_miner(
          x, y, distance=distance, references=r), pml_miners.BatchHardMiner(distance=dist)),
  }
  for kind in ("all", "hard", "semihard", "easy"):
    cases[f"triplet_{kind}"] = (
        lambda x, y, r=None, kind=kind: miners.triplet_margin_miner(
            x, y, margin=(hi - lo) / 2, type_of_triplets=kind, distance=distance, references=r),
        pml_miners.TripletMarginMiner(margin=(hi - lo) / 2, type_of_triplets=kind, distance=dist))
  for ps, ns in (("easy", "semihard"), ("hard", "hard"), ("semihard", "hard"), ("easy", "easy"),
                 ("all", "hard"), ("easy", "all"), ("all", "all")):
    cases[f"easy_hard_{ps}_{ns}"] = (
        lambda x, y, r=None, ps=ps, ns=ns: miners.batch_easy_hard_miner(
            x, y, pos_strategy=ps, neg_strategy=ns, distance=distance, references=r),
        pml_miners.BatchEasyHardMiner(pos_strategy=ps, neg_strategy=ns, distance=dist))
  cases["easy_hard_ranges"] = (
      lambda x, y, r=None: miners.batch_easy_hard_miner(
          x, y, pos_strategy="hard", neg_strategy="hard", allowed_pos_range=(lo, hi),
          allowed_neg_range=(lo, hi), distance=distance, references=r),
      pml_miners.BatchEasyHardMiner(pos_strategy="hard", neg_strategy="hard",
                                    allowed_pos_range=(lo, hi), allowed_neg_range=(lo, hi),
                                    distance=dist))
  return cases


def _to_mask(indices, shape):
  return _pair_masks(indices, shape) if len(indices) == 4 else _triplet_mask(indices, shape)


@pytest.mark.parametrize("distance", DISTANCES)
def test_miners_select_pmls_sets(distance):
  x, y = _inputs(0, scale=0.5)
  xr, yr = _inputs(1, b=31, scale=0.5)
  cases = _pml_miner_cases(distance)
  with jax.enable_x64(True):
    x64, y64, xr64, yr64 = (jnp.asarray(a) for a in (x.astype(np.float64), y, xr.astype(
        np.float64), yr))
    ones = jnp.ones(31, bool)

    @jax.jit
    def ours(x, y, xr, yr):
      return {name: (f(x, y), f(x, y, (xr, yr, ones))) for name, (f, _) in cases.items()}

    got = jax.tree_util.tree_map(np.asarray, ours(x64, y64, xr64, yr64))
  xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
  xrt, yrt = torch.tensor(xr, dtype=torch.float64), torch.tensor(yr)
  for name, (_, miner) in cases.items():
    batch, ref = got[name]
    theirs = _to_mask(miner(xt, yt), (B, B))
    theirs_ref = _to_mask(miner(xt, yt, xrt, yrt), (B, 31))
    for mine, pml, what in ((batch, theirs, "batch"), (ref, theirs_ref, "references")):
      mine = mine if isinstance(mine, tuple) else (mine,)
      pml = pml if isinstance(pml, tuple) else (pml,)
      for a, b in zip(mine, pml):
        np.testing.assert_array_equal(a, b, err_msg=f"{name} {distance} {what}")
      assert sum(int(m.sum()) for m in mine) > 0 or name.startswith("triplet_hard"), name


def _loss_cases(distance):
  dist = _pml_distance(distance)
  cases = {
      "contrastive": (lambda x, y, **k: losses.contrastive_loss(
          x, y, pos_margin=0.1, neg_margin=0.8, distance=distance, **k),
                      pml_losses.ContrastiveLoss(pos_margin=0.1, neg_margin=0.8, distance=dist)),
      "ms": (lambda x, y, **k: losses.multi_similarity_loss(x, y, distance=distance, **k),
             pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5, distance=dist)),
      "ntxent": (lambda x, y, **k: losses.ntxent_loss(x, y, temperature=0.2, distance=distance,
                                                      **k),
                 pml_losses.NTXentLoss(temperature=0.2, distance=dist)),
      "supcon": (lambda x, y, **k: losses.supcon_loss(x, y, temperature=0.3, distance=distance,
                                                      **k),
                 pml_losses.SupConLoss(temperature=0.3, distance=dist)),
      "triplet": (lambda x, y, **k: losses.triplet_margin_loss(x, y, margin=0.2,
                                                               distance=distance, **k),
                  pml_losses.TripletMarginLoss(margin=0.2, distance=dist)),
      "lifted": (lambda x, y, **k: losses.lifted_structure_loss(
          x, y, neg_margin=0.7, pos_margin=0.1, distance=distance, **k),
                 pml_losses.LiftedStructureLoss(neg_margin=0.7, pos_margin=0.1, distance=dist)),
      "margin": (lambda x, y, **k: losses.margin_loss(x, y, 1.0, margin=0.2, distance=distance,
                                                      **k),
                 pml_losses.MarginLoss(margin=0.2, beta=1.0, distance=dist)),
  }
  if distance == "cosine":
    cases["circle"] = (lambda x, y, **k: losses.circle_loss(x, y, m=0.3, gamma=20.0, **k),
                       pml_losses.CircleLoss(m=0.3, gamma=20))
  return cases


# Pair-based losses take pml's pairs, triplet-based ones pml's triplets.
_TRIPLET_LOSSES = ("triplet", "margin")


@pytest.mark.parametrize("distance", DISTANCES)
def test_losses_match_pml_with_and_without_mined_pairs(distance):
  x, y = _inputs(2, scale=0.5)
  cases = _loss_cases(distance)
  xt, yt = torch.tensor(x, dtype=torch.float64), torch.tensor(y)
  pairs = _pml_miner_cases(distance)["ms"][1](xt, yt)
  triplets = _pml_miner_cases(distance)["triplet_all"][1](xt, yt)
  pair_masks = _pair_masks(pairs, (B, B))
  triplet_mask = _triplet_mask(triplets, (B, B))

  @jax.jit
  def ours(x, y, pair_masks, triplet_mask):
    out = {}
    for name, (f, _) in cases.items():
      mined = {"triplets": triplet_mask} if name in _TRIPLET_LOSSES else {"pairs": pair_masks}
      out[name] = jax.value_and_grad(lambda a, f=f: f(a, y))(x)
      out[name + "_mined"] = jax.value_and_grad(lambda a, f=f, m=mined: f(a, y, **m))(x)
    return out

  got = ours(x, y, pair_masks, triplet_mask)
  for name, (_, loss_fn) in cases.items():
    mined = triplets if name in _TRIPLET_LOSSES else pairs
    _check((got[name][0], [got[name][1]]), _pml(loss_fn, x, y), f"{name} {distance}")
    _check((got[name + "_mined"][0], [got[name + "_mined"][1]]), _pml(loss_fn, x, y, mined),
           f"{name} mined {distance}")


def test_margin_loss_learned_beta_matches_pml():
  x, y = _inputs(3, scale=0.5)
  for per_class in (False, True):
    beta = np.linspace(0.9, 1.3, C) if per_class else np.array([1.1])
    theirs = pml_losses.MarginLoss(margin=0.2, nu=0.1, beta=1.0, learn_beta=True,
                                   num_classes=C if per_class else None).double()
    theirs.beta.data = torch.tensor(beta)
    expected = _pml(theirs, x, y, params=[theirs.beta])
    beta_in = jnp.asarray(beta, jnp.float32) if per_class else jnp.float32(beta[0])
    value, grads = jax.value_and_grad(
        lambda a, b: losses.margin_loss(a, jnp.asarray(y, jnp.int32), b, margin=0.2, nu=0.1),
        argnums=(0, 1))(x, beta_in)
    _check((value, [grads[0], np.reshape(grads[1], np.shape(expected[1][1]))]), expected,
           f"margin per_class={per_class}")


def test_subcenter_arcface_matches_pml():
  x, y = _inputs(4)
  k = 3
  rng = np.random.default_rng(5)
  w = (0.5 * rng.normal(size=(D, C, k))).astype(np.float32)
  # Push one example past pi - m from its class so the monotone branch is exercised.
  x[0] = -w[:, y[0]].mean(axis=-1) * 4
  theirs = pml_losses.SubCenterArcFaceLoss(num_classes=C, embedding_size=D,
                                           margin=np.degrees(0.5), scale=30,
                                           sub_centers=k).double()
  theirs.W.data = torch.tensor(w.reshape(D, C * k).astype(np.float64))
  expected = _pml(theirs, x, y, params=[theirs.W])
  value, (gx, gw) = jax.jit(jax.value_and_grad(
      lambda a, b: losses.subcenter_arcface_loss(a, jnp.asarray(y, jnp.int32), b, margin=0.5,
                                                 scale=30.0), argnums=(0, 1)))(x, w)
  _check((value, [gx, np.reshape(gw, (D, C * k))]), expected, "subcenter arcface")


@pytest.mark.parametrize("name", ["contrastive", "ms", "ntxent", "supcon", "triplet", "margin",
                                  "ms_mined"])
def test_cross_batch_memory_matches_pml(name):
  """Five batches of 12 through a 40-slot memory (it fills, then wraps mid-batch)."""
  mined = name.endswith("_mined")
  base = name.removesuffix("_mined")
  f, loss_fn = _loss_cases("cosine" if base in ("ms", "ntxent", "supcon") else "euclidean")[base]
  miner = pml_miners.MultiSimilarityMiner(epsilon=0.1) if mined else None
  xbm = pml_losses.CrossBatchMemory(loss_fn, D, memory_size=40, miner=miner)
  size, b = 40, 12

  @jax.jit
  def step(state, x, y):
    state = losses.xbm_update(state, x, y)

    def loss(a):
      pairs = None
      if mined:
        pairs = miners.multi_similarity_miner(a, y, references=losses.xbm_references(state))
        return f(a, y, pairs=pairs, references=losses.xbm_references(state, b))
      return f(a, y, references=losses.xbm_references(state, b))

    return state, jax.value_and_grad(loss)(x)

  state = losses.xbm_init(size, D)
  for i in range(5):
    x, y = _inputs(10 + i, b=b, scale=0.5)
    state, (value, grad) = step(state, x, jnp.asarray(y, jnp.int32))
    _check((value, [grad]), _pml(xbm, x, y), f"{name} step {i}")
  assert int(state.filled) == size and int(state.pointer) == (5 * b) % size
