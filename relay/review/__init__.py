"""Dispute review: thread transcripts (text, JSON, mbox) and export bundles."""
