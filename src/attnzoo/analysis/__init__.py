"""Analyses of trained models: activation outliers and post-training quantisation (:mod:`.outliers`)."""
