"""Training style generators on Ray Train: ``framestyle train RECIPE``.

``recipes`` is the table (one file per recipe: ``fast_style``, ``cyclegan``, ``pix2pix``,
``distill``, each a ``recipe.Recipe``); ``data`` streams the training images through Ray Data;
``loop`` is what every worker runs; ``trainer`` checks, runs ``TorchTrainer`` and publishes to
the model hub; ``run_log`` writes metrics, the loss plot and sample grids. See docs/training.md.
"""
