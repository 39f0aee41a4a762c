-- A seller reply names the buyer message it answers, so that the replies to one buyer message can
-- be counted (rules.max_replies_per_buyer_message) inside the commit that records the next one.
ALTER TABLE message_rules ADD COLUMN reply_to INTEGER REFERENCES messages(id);
CREATE INDEX message_rules_reply_to ON message_rules(reply_to) WHERE reply_to IS NOT NULL;
