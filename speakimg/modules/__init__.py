"""LightningModules: thin training wrappers over the model code (speech fine-tune, HiFi-GAN)."""
