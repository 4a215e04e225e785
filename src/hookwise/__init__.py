"""hookwise: registry webhooks in, YAML rules match, actions run durably."""

__version__ = "0.1.0"
