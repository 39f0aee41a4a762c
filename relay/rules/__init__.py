"""The messaging rules' pure parts (RFC 3834, tokens, metrics) and the relay-owned mailboxes."""
