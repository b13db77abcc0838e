"""Results figures re-drawn from the committed JSON in ``benchmarks/results/`` (no re-run).

    python -m benchmarks.figures            # every figure this package knows
    python -m benchmarks.figures ptq_pairs_hard fields
"""
