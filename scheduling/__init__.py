"""The route plan and its rules. Knows nothing of bots or channels."""
