"""Everything that runs on a worker: data, model, training, evaluation, compilation."""
