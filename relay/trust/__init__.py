"""Sender authentication helpers: async DNS, SPF, DKIM verification, DMARC alignment, Authentication-Results."""
