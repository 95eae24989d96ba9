"""Stage 3, classify: DenseNet-121, the arms, batch augmentation, training, sweeps and CAMs."""
