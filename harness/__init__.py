"""Everything that runs on a compute node: models and residual variants, accounting, training,
distributed. Data preparation is corpus/; the artifacts every layer shares are records/."""
