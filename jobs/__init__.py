"""Job kinds behind the ``framestyle`` command: one module per subcommand, registered in cli.py."""
