"""The label-conditioned diffusion generator: model (diffusers UNet plus label projection), training."""
