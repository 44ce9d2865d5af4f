"""Training recipes of the shipped models: data, seed, training and evaluation, one module per model."""
