"""Style networks as pure ``nn.Module``s (no I/O, no Ray, no paths), plus the registry that maps
architecture names to classes and the loaders that turn weight files into state dicts."""
