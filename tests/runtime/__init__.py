"""The bootstrap: settings in, a wired process out."""
