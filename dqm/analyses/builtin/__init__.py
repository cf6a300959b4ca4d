"""The built-in analyses of this detector, declared in ``dqm/analyses/analyses.toml``."""
