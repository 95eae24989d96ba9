"""The label-conditioned GAN: networks (nets.py) and its training loop (train.py)."""
