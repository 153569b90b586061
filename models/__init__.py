"""Style networks as pure ``nn.Module``s (no I/O, no Ray, no paths), one file each; the
architecture table (``architectures``) that says everything else about them; checkpoint formats
(``checkpoints``); the model hub that resolves, lists and publishes models (``hub``); export."""
