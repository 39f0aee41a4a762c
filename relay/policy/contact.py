"""Contact details that move a conversation off the platform: what the policy does with them.

Reads [contact] (mail_providers, disabled_rules) and [allowlist] of policy.toml. Finding them is
the message model's one contact finder (relay.message.contacts.contacts_in: e-mail addresses,
phone numbers, messenger IDs, however written); this module decides which findings count: an
address in `own_addresses` (our aliases, the parties' own registered addresses, which the
rewriter maps to aliases) or on the allowlist is not a contact detail, and a disabled rule is
silent. Rule ids: contact.email, contact.email_obfuscated, contact.email_reversed,
contact.phone, contact.phone_words, contact.messenger.<name> (the [[contact.rules]] phrase
rules of the config add to these).
"""

from __future__ import annotations

from relay.message.contacts import contacts_in, is_own
from relay.message.normalize import View
from relay.message.phones import Contact
from relay.policy.links import Hit, tlds
from relay.policy.settings import Policy


def find_contacts(view: View, policy: Policy, own_addresses: frozenset[str] = frozenset(),
                  literals: tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]] | None = None,
                  ) -> list[Hit]:
    """The contact details in a match view that break the policy, as hits (view offsets;
    ``literals``: phones.literals_in of the view's text, if the caller has found them)."""
    found = contacts_in(view, policy.settings.contact.mail_providers, tlds(), literals)
    return [Hit("contact", c.rule, c.start, c.end, c.detail) for c in found
            if policy.enabled("contact", c.rule) and not (c.kind == "email" and _allowed_email(c, policy, own_addresses))]


def _allowed_email(c: Contact, policy: Policy, own: frozenset[str]) -> bool:
    addr = c.value
    if is_own(addr, own) or addr in policy.allow_emails:
        return True
    labels = addr.rsplit("@", 1)[-1].split(".")
    return any(".".join(labels[i:]) in policy.allow_domains for i in range(len(labels)))
