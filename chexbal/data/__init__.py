"""Stage 1, data: label names, patient splits, image stores, the sources (phantom, CheXpert) and `prepare`."""
