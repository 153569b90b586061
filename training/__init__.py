"""Training style generators with Ray Train (fast neural style, CycleGAN, pix2pix, distillation).

Not built yet: the video and image pipelines come first.
"""
