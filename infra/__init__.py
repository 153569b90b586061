"""Cluster configuration for running framestyle on a real Ray cluster (KubeRay, cluster launcher)."""
