-- A delivery claim is a lease (relay/delivery/lease.py): it ends at lease_until unless the
-- claiming process renews it, and lease_token (raised at every claim) fences results, so that a
-- process whose lease was taken back can no longer write over its successor's outcome.
-- claimed_by now names host:pid:nonce, not a bare PID.
ALTER TABLE queue ADD COLUMN lease_until REAL;
ALTER TABLE queue ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
-- the sweeper's question: which leases have run out (only 'sending' rows are indexed)
CREATE INDEX queue_leases ON queue(lease_until) WHERE state = 'sending';
