-- wire = 1: the content was known to be in wire form (CRLF line ends only) when it was stored, so
-- delivery reads it back without scanning 10 MB for a bare CR or LF again.
ALTER TABLE blobs ADD COLUMN wire INTEGER NOT NULL DEFAULT 0;
