"""The compute unit, defined once.

1 PF-day = 1 PFLOP/s sustained for one day = 1e15 x 86,400 = 8.64e19 FLOPs (the paper's unit of
compute, its Table 2 and Figure 4). Compute C = training FLOPs per token x training tokens
(harness/accounting.py), the same definition for every variant.
"""

from __future__ import annotations

PF_DAY = 1e15 * 86_400  # FLOPs in one PFLOP/s-day (8.64e19)


def pfdays(flops: float) -> float:
    return flops / PF_DAY
