"""What every layer shares: storage (local paths and ``s3://``), user-facing errors, hashing.

The layers above import downward only (checked by the import-linter contract in pyproject.toml):

    jobs -> training -> pipeline -> models -> core
"""
