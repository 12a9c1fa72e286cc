"""Placement of model instances on the cluster: pure functions over a ClusterSnapshot (see README.md)."""
