"""Example apps shipped with Fennel (used by ``fennel demo``)."""
