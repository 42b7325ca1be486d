"""batchrmt validation layer: theory against measurement, batch-size sweeps, learning-rate thresholds,
figures, reports and the ``batchrmt`` command line (``validation.cli``)."""
