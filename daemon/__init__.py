"""The sender: turns mailings into delivered messages (``notifyctl daemon``)."""
