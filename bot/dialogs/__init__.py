"""The dialogs: what the bot says and asks, turn by turn, channel-agnostic."""
