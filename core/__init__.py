"""What every part of Doorstep shares: settings, storage, the data model, security and logging."""
