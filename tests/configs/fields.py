"""What tests/configs shares: the fields of a config the trainer does not define."""

from configs import common


def unknown_fields(config, base=None) -> list[str]:
  """Dotted fields of `config` that `configs/common.py` does not define (outside the open
  groups, whose keys are a loss's or model's keyword arguments)."""
  base = (base or common.get_config()).to_dict()
  out = []

  def walk(node, ref, path):
    for k, v in node.items():
      dotted = f"{path}.{k}" if path else k
      if dotted in common.OPEN_GROUPS:
        continue
      if not isinstance(ref, dict) or k not in ref:
        out.append(dotted)
      elif isinstance(v, dict):
        walk(v, ref[k], dotted)

  walk(config.to_dict(), base, "")
  return out
