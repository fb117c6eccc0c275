"""Example graphs and the synthetic data sets they run on."""
