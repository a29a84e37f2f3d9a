"""Gmail: the emails asset, push watch and email processing."""
