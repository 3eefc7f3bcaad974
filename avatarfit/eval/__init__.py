"""Evaluation: metrics (more to come: paper tables, latent inspection)."""
