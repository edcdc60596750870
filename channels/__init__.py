"""Adapters between the messaging networks and the conversation engine / outbox."""
