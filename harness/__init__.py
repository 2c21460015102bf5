"""Everything that runs on a compute node: configs, models and residual variants, accounting, data, training."""
