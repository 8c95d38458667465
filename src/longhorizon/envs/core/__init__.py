"""The protocol every env shares: the text-env base class, the tool protocol and the wrappers."""
