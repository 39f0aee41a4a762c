"""Every SMTP reply the relay gives, in one table.

Texts name the rule a sender broke in plain words; they never contain an address, a
pattern, a stack trace or anything else from inside the server. The first digit of the
code and of the enhanced status (RFC 3463) always agree; tests check every entry.
"""

from __future__ import annotations

from relay.model import Reply

# --- success -----------------------------------------------------------------------------
OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
QUEUED = Reply(250, "2.0.0", "Message accepted for delivery")
HELD = Reply(250, "2.0.0", "Message accepted and held for review")
UNSUBSCRIBED = Reply(250, "2.0.0", "Unsubscribed; a confirmation is on its way")
NO_RESPONSE_MARKED = Reply(250, "2.0.0", "Marked: that buyer message needs no response")

# --- temporary failures (the client keeps the message and tries again) -----------------
INTERNAL_ERROR = Reply(451, "4.3.0", "Temporary local problem, please try again later")
STORE_UNAVAILABLE = Reply(451, "4.3.0", "Temporary problem storing the message, please try again later")
STORAGE_FULL = Reply(452, "4.3.1", "Insufficient system storage, please try again later")
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, please try again later")
TOO_MANY_FROM_IP = Reply(421, "4.7.0", "Too many connections from your address, please try again later")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, please try again later")
DNS_TEMPFAIL = Reply(451, "4.7.0", "Temporary problem checking the sender, please try again later")
RATE_LIMITED = Reply(451, "4.7.1", "Too many messages from your address, please slow down")
INFLIGHT_FULL = Reply(452, "4.3.1", "Too much mail in progress, please try again later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")

# --- permanent failures -------------------------------------------------------------------
NO_SUCH_ALIAS = Reply(550, "5.1.1", "No such recipient here")
RELAY_DENIED = Reply(554, "5.7.1", "Relaying denied: this server only accepts mail for its own addresses")
BAD_RECIPIENT_SYNTAX = Reply(553, "5.1.3", "Recipient address is not valid")
BAD_SENDER_SYNTAX = Reply(553, "5.1.7", "Sender address is not valid")
NOT_AUTHORIZED = Reply(550, "5.7.1", "Sender is not a participant of this conversation")
NOT_OTHER_PARTY = Reply(550, "5.7.1", "Sender is not the other party of this conversation: each alias stands for"
                        " one party, so write to the alias the other party's messages come from")
OWN_ALIAS = Reply(550, "5.7.1", "This address stands for you in this conversation; to write to the other"
                  " party, reply to their message or write to the address their messages come from")
SPOOFED = Reply(550, "5.7.1", "Sender could not be authenticated for this address")
FROM_DISPLAY_ADDRESS = Reply(550, "5.7.1", "From display name contains a different address")
FROM_GROUP = Reply(550, "5.7.1", "Group syntax is not allowed in From")
BARE_LINE_ENDING = Reply(550, "5.6.0", "Message contains a bare CR or LF or a NUL byte (RFC 5321 section 2.3.8)")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message too big")
HEADER_TOO_BIG = Reply(552, "5.3.4", "Message header too big")
LINE_TOO_LONG = Reply(552, "5.6.0", "Message has a line that is too long")
PIPELINED_AFTER_DATA = Reply(554, "5.5.0", "Commands sent before the reply to DATA (PIPELINING is not offered)")
XCLIENT_DENIED = Reply(550, "5.7.0", "Error: insufficient authorization")
MIME_TOO_COMPLEX = Reply(554, "5.6.0", "Message structure too deeply nested or too many parts")
UNPARSEABLE = Reply(554, "5.6.0", "Message could not be parsed")
UNMASKABLE_ADDRESS = Reply(550, "5.7.1", "Message refused: it contains a real e-mail address in a form the relay"
                           " cannot mask; write the message without e-mail addresses")
UNREADABLE_CONTENT = Reply(554, "5.6.0", "Message refused: part of it cannot be checked for contact details"
                           " (too large, too complex or unreadable)")
TOO_COSTLY = Reply(554, "5.6.0", "Message too complex to check")
LOOP_DETECTED = Reply(554, "5.4.6", "Mail loop detected")
PARTY_SUSPENDED = Reply(550, "5.7.1", "This account may not send messages at the moment")
NEED_TLS = Reply(530, "5.7.0", "Must issue a STARTTLS command first")

# --- messaging rules (relay/pipeline/stages/rules.py) -------------------------------------
OPTED_OUT = Reply(550, "5.7.1", "The buyer has opted out of non-critical messages; a message critical to the order"
                  " (customization, delivery scheduling, shipping address) must have [Important] in the subject")
IMPORTANT_BYPASS_LOST = Reply(550, "5.7.1", "The buyer has opted out of non-critical messages, and [Important] no"
                              " longer passes for you because it was used for non-critical messages")
IMPORTANT_UNJUSTIFIED = Reply(550, "5.7.1", "[Important] is only for messages about the customization, delivery"
                              " scheduling or shipping address of an order")
ORDER_LIMIT = Reply(550, "5.7.1", "Too many unsolicited messages about this order; please wait for the buyer to write")
NO_BUYER_MESSAGE_QUOTED = Reply(550, "5.7.0", "No buyer message of yours is quoted; reply to the buyer's message"
                                " and send that reply to this address")
DAILY_LIMIT = Reply(550, "5.7.1", "Too many unsolicited messages to this buyer today; please wait for the buyer to write")

ALL: dict[str, Reply] = {name: value for name, value in globals().items() if isinstance(value, Reply)}


def reject_policy(category_text: str) -> Reply:
    """550 for a content policy category; `category_text` comes from the policy file, in plain words."""
    return Reply(550, "5.7.1", f"Message refused: {category_text}")
