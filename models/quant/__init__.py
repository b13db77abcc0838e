"""Dynamic post-training quantization (DPTQ): per-example activation ranges and bit-widths.

* :mod:`models.quant.fake` — uniform fake quantization with a straight-through estimator;
  bit-widths ``2..8`` and :data:`FP_BITS` (= 32) for full precision.
* :mod:`models.quant.wrapper` — :class:`DynamicQuantizer`: a bit plan ``[batch, layers]``
  applied in one batched forward, with FP logits and per-layer statistics from the same call.
* :mod:`models.quant.plans` — :func:`plan_logits`: logits under many plans, sharing the
  forward over their common prefixes.
* :mod:`models.quant.range_aware` — :class:`RangeAwareQuantizer`: the same forward values for
  training, with gradients to each example's activation range.
* :mod:`models.quant.metrics` — accuracy / KL of a network under a plan over a split.
"""

from models.quant.fake import (
    FP_BITS,
    QUANT_BITS,
    VALID_BITS,
    ZERO_POINTS,
    check_bits,
    check_zero_point,
    fake_quant_activation,
    fake_quant_weight,
    ste,
)
from models.quant.metrics import evaluate_plan, kl_fp_q
from models.quant.range_aware import RangeAwareQuantizer, range_aware_fake_quant
from models.quant.wrapper import STAT_NAMES, DynamicQuantizer, Prefix, QuantOutput, layer_stats

__all__ = ["FP_BITS", "QUANT_BITS", "STAT_NAMES", "VALID_BITS", "ZERO_POINTS", "DynamicQuantizer",
           "Prefix", "check_zero_point",
           "QuantOutput",
           "RangeAwareQuantizer", "range_aware_fake_quant",
           "check_bits", "evaluate_plan", "fake_quant_activation", "fake_quant_weight",
           "kl_fp_q", "layer_stats", "ste"]
