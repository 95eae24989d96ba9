"""chexbal: does GAN augmentation of rare chest X-ray findings help, and at which data sizes?"""

__version__ = "0.1.0"
