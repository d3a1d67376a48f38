"""The train state: parameters, BatchNorm statistics, optimiser state and step, as one pytree."""

from __future__ import annotations

from typing import Any

import flax
from flax.training import train_state
import numpy as np


class TrainState(train_state.TrainState):
  """`flax.training.train_state.TrainState` plus the model's BatchNorm statistics.

  `params` is `{"model": <backbone and head params>, "loss": <classifier / proxies / centres>}`;
  the loss owns its parameters (see `dmlax.train.objectives`), the model never sees them.
  `memory` is the cross-batch memory (`dmlax.losses.memory`) when the config asks for one.
  `apply_fn` and `tx` are static (not saved); `to_checkpoint`/`from_checkpoint` convert the
  array part to and from plain nested dicts, which is what the checkpoints hold.

  Example:
    >>> import jax
    >>> import jax.numpy as jnp
    >>> import optax
    >>> from dmlax import models
    >>> model = models.get_model("small_cnn", embedding_dim=16)
    >>> variables = model.init(jax.random.key(0), jnp.zeros((2, 8, 8, 1)), train=False)
    >>> params = {"model": variables["params"], "loss": {"proxies": jnp.zeros((5, 16))}}
    >>> state = TrainState.create(apply_fn=model.apply, params=params, tx=optax.adam(1e-3),
    ...                           batch_stats=variables.get("batch_stats", {}))
    >>> state.step.dtype, sorted(state.to_checkpoint())
    (dtype('int32'), ['batch_stats', 'opt_state', 'params', 'step'])
    >>> state.from_checkpoint(state.to_checkpoint()).params["loss"]["proxies"].shape
    (5, 16)
  """
  batch_stats: Any = None
  memory: Any = None  # `dmlax.losses.XBMState` with config.loss.memory_size > 0, else None

  @classmethod
  def create(cls, *, apply_fn, params, tx, **kwargs) -> "TrainState":
    """`flax`'s `create` with `step` a strongly typed int32 zero.

    flax starts from the Python int 0, which JAX places as a weakly typed int32 that stays weak
    through every jitted step, while a checkpoint restores `step` as a plain int32. The two trace
    to different programs (different HLO modules and compilation-cache keys), so a resumed run
    would not run the very program of an uninterrupted one; a strong int32 from the start keeps
    them identical.
    """
    state = super().create(apply_fn=apply_fn, params=params, tx=tx, **kwargs)
    return state.replace(step=np.zeros((), np.int32))

  def to_checkpoint(self) -> dict:
    """The arrays of the state as nested dicts (step, params, batch_stats, opt_state, and
    memory when there is one)."""
    out = {
        "step": self.step,
        "params": self.params,
        "batch_stats": self.batch_stats,
        "opt_state": flax.serialization.to_state_dict(self.opt_state),
    }
    if self.memory is not None:
      out["memory"] = dict(self.memory._asdict())
    return out

  def from_checkpoint(self, restored: dict) -> "TrainState":
    """This state with its arrays replaced by those of `restored` (as `to_checkpoint` wrote)."""
    return self.replace(
        step=restored["step"],
        params=restored["params"],
        batch_stats=restored["batch_stats"],
        opt_state=flax.serialization.from_state_dict(self.opt_state, restored["opt_state"]),
        memory=(None if self.memory is None
                else type(self.memory)(**{k: restored["memory"][k] for k in self.memory._fields})),
    )

