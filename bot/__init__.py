"""The channel-agnostic conversation engine."""
