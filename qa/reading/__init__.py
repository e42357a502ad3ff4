"""Reading passages: the extractive span reader."""
