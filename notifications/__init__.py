"""Proactive notifications and the templates retailers own."""
