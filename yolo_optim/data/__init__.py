"""The offline demo dataset, dataset checks and the cached demo baseline model."""
