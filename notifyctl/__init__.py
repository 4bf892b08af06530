"""notifyctl: clients, mailings and the delivery of every message inside its time frame."""

__version__ = "0.1.0"
