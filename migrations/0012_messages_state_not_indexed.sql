-- No query looks messages up by state alone (the queue has its own index for what is due), and
-- an index of a handful of values was rewritten twice per message: on insert ('queued') and on
-- delivery ('delivered'), a page each.
DROP INDEX IF EXISTS messages_state;
