-- Which process claimed a queue row: with several worker processes (smtp.workers), a worker
-- that dies leaves only its own 'sending' rows to be returned to the queue.
ALTER TABLE queue ADD COLUMN claimed_by TEXT;
